/**
 * What a transport node serves, for its heartbeat (NodeHeartbeat.served) and
 * the admin's node view: the devices with an account stored here, and those
 * accounts per service. Read from the account stores' keys (no secret is
 * opened), at most every `maxAgeMs`: the heartbeat goes out every second and
 * the numbers change only when accounts are added or removed.
 */
import type { ServedCounts } from '../../bus/bus.ts';

/** Accounts per device of one service (SealedAccountStore.census). */
export type Census = () => Map<string, number> | undefined;

export function countServed(
  mail: Map<string, number> | undefined,
  im: Map<string, number> | undefined,
): ServedCounts {
  const devices = new Set([...(mail?.keys() ?? []), ...(im?.keys() ?? [])]);
  const total = (m: Map<string, number> | undefined) => [...(m?.values() ?? [])].reduce((a, b) => a + b, 0);
  return { devices: devices.size, mailAccounts: total(mail), imAccounts: total(im) };
}

/** countServed over the two stores, recounted when the last count is older than `maxAgeMs`. */
export function servedCounter(
  mail: Census,
  im: Census,
  maxAgeMs = 5000,
  now: () => number = Date.now,
): () => ServedCounts {
  let last: { at: number; counts: ServedCounts } | undefined;
  return () => {
    const t = now();
    if (last === undefined || t - last.at >= maxAgeMs) {
      try {
        last = { at: t, counts: countServed(mail(), im()) };
      } catch {
        // A store closing under a late heartbeat: the last count stands (a heartbeat must not throw).
        return last?.counts ?? countServed(undefined, undefined);
      }
    }
    return last.counts;
  };
}

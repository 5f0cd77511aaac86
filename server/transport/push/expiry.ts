/**
 * Expiry of wake-up channels nobody uses (issue 14): a registration neither
 * registered again nor used for a wake-up its push service accepted within
 * `push.expireDays` is removed by a periodic sweep. A phone that dropped the
 * app, or a browser profile deleted, leaves a channel that no service ever
 * calls gone (FCM and Web Push services may accept pushes to it for months):
 * without expiry the registry keeps it, and every wake-up pays for it.
 *
 * Use is recorded at most once a day per channel (`usedAt`), so that a busy
 * device costs the registry one write a day, not one per wake-up. Every
 * transport of a cluster sweeps the shared table; a removal is a
 * compare-and-set on the record's revision (PairRecords.prune), so each
 * expired channel is removed, logged and counted by one of them, and a
 * channel registered again meanwhile stays.
 */
import { lastUse, type PushRegistration, type PushRegistrations } from './registrations.ts';

export const DAY_MS = 24 * 3600 * 1000;
export const DEFAULT_EXPIRE_DAYS = 60;
/** How often each transport sweeps; the first sweep comes soon after the start. */
export const SWEEP_EVERY_MS = 3600 * 1000;
export const FIRST_SWEEP_AFTER_MS = 5000;

/** Notes that a wake-up through the channel went through: a write only when the last was a day ago or more. */
export async function recordUse(
  registrations: PushRegistrations,
  deviceId: string,
  id: string,
  now: number,
): Promise<void> {
  const stale = (r: PushRegistration) => now - lastUse(r) >= DAY_MS;
  const current = registrations.get(deviceId, id);
  if (!current || !stale(current)) return;
  await registrations.update(deviceId, id, (r) => (stale(r) ? { ...r, usedAt: now } : undefined));
}

/** Removes the channels unused for `expireDays` before `now`; `onExpired` hears of each this call removed. */
export function expireUnused(
  registrations: PushRegistrations,
  expireDays: number,
  now: number,
  onExpired: (deviceId: string, id: string, record: PushRegistration) => void,
): Promise<number> {
  return registrations.prune(now - expireDays * DAY_MS, (deviceId, id, record) => {
    if (record) onExpired(deviceId, id, record);
  });
}

/** Runs `sweep` soon after the start and then every SWEEP_EVERY_MS, one at a time; the stop waits for one under way. */
export function scheduleSweeps(sweep: () => Promise<unknown>, everyMs = SWEEP_EVERY_MS): () => Promise<void> {
  let running: Promise<unknown> | undefined;
  let timer: ReturnType<typeof setTimeout>;
  const next = (ms: number) => {
    timer = setTimeout(() => {
      // The sweep logs its own failures; the next one tries again.
      running ??= sweep()
        .catch(() => {})
        .finally(() => {
          running = undefined;
        });
      next(everyMs);
    }, ms);
    timer.unref();
  };
  next(Math.min(FIRST_SWEEP_AFTER_MS, everyMs));
  return async () => {
    clearTimeout(timer);
    await running;
  };
}

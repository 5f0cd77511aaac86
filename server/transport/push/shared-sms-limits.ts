/**
 * The SMS limits of a cluster (issue 14: "rate-limited per device and per
 * operator"): one count per device and per operator and clock hour in the
 * cluster's shared state (table `sms_counts`, a JetStream KV bucket), raised
 * by compare-and-set (modify(): read the local copy, write at its revision,
 * on a conflict wait for the newer value and decide again), so that two
 * transports taking the last slot at once cannot both have it. A limit hit
 * on one transport then holds on every other: an operator's devices spread
 * over the nodes share the operator's hour.
 *
 * Clock hours rather than the single node's sliding hour (sms-limits.ts):
 * one key per subject and hour, no list of timestamps rewritten at every SMS;
 * the price is that up to twice a limit may go around the turn of an hour.
 * Keys start with the hour, so the old ones come first in key order and are
 * removed by whichever node takes an SMS next (a lost race leaves one for the
 * next).
 *
 * A count the shared state cannot write (NATS unreachable, no quorum) is
 * taken from the node's own limits instead, and logged: the limit then holds
 * per node again, as before the cluster's state opened, rather than SMS
 * stopping or going unlimited.
 */
import type { Logger } from 'pino';
import { modify, type SharedState, type SharedTable } from '../../store/shared/table.ts';
import { type Admission, HOUR_MS, type SmsLimitsOptions, SmsRateLimits } from './sms-limits.ts';

export const SMS_COUNTS_TABLE = 'sms_counts';

interface Count {
  n: number;
}

function readCount(raw: unknown): Count {
  const n = (raw as { n?: unknown } | null)?.n;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > 10_000_000) {
    throw new Error('not an SMS count');
  }
  return { n };
}

/** `0000493257|d|<device>`: the hour first, fixed width, so key order is hour order. */
const keyOf = (hour: number, what: 'd' | 'o', id: string) =>
  `${String(hour).padStart(10, '0')}|${what}|${id}`;
const hourOf = (key: string) => Number(key.slice(0, 10));

/** Adds one to `key`'s count unless it is at `limit`; whether it did. */
async function bump(table: SharedTable<Count>, key: string, limit: number): Promise<boolean> {
  let taken = false;
  // modify may decide more than once (a conflict): the last decision is the one stored.
  await modify(table, key, (current) => {
    const n = current?.value.n ?? 0;
    taken = n < limit;
    return taken ? { n: n + 1 } : undefined;
  });
  return taken;
}

async function unbump(table: SharedTable<Count>, key: string): Promise<void> {
  await modify(table, key, (current) => {
    if (!current) return undefined;
    return current.value.n <= 1 ? null : { n: current.value.n - 1 };
  });
}

/**
 * The limits a transport admits SMS with: this node's own until share() opened the cluster's
 * table (single node: always), the cluster's from then on.
 */
export class SmsLimits {
  readonly #local: SmsRateLimits;
  readonly #o: SmsLimitsOptions;
  readonly #now: () => number;
  readonly #logger: Pick<Logger, 'warn'> | undefined;
  #table: SharedTable<Count> | undefined;

  constructor(opts: SmsLimitsOptions & { logger?: Pick<Logger, 'warn'> }) {
    this.#o = opts;
    this.#local = new SmsRateLimits(opts);
    this.#now = opts.now ?? Date.now;
    this.#logger = opts.logger;
  }

  /** Counts in the cluster's shared state from now on. */
  async share(state: SharedState): Promise<void> {
    this.#table = await state.table<Count>(SMS_COUNTS_TABLE, { read: readCount });
  }

  get shared(): boolean {
    return this.#table !== undefined;
  }

  async take(deviceId: string, operator: string): Promise<Admission> {
    const table = this.#table;
    if (!table) return this.#local.take(deviceId, operator);
    const hour = Math.floor(this.#now() / HOUR_MS);
    const device = keyOf(hour, 'd', deviceId);
    const op = keyOf(hour, 'o', operator);
    try {
      this.#prune(table, hour);
      if (!(await bump(table, device, this.#o.perDevicePerHour))) {
        return { ok: false, why: `rate limit: ${this.#o.perDevicePerHour} SMS per device per hour` };
      }
      if (!(await bump(table, op, this.#o.perOperatorPerHour))) {
        await unbump(table, device);
        return { ok: false, why: `rate limit: ${this.#o.perOperatorPerHour} SMS per operator per hour` };
      }
    } catch (err) {
      this.#logger?.warn({ err, deviceId }, 'SMS limits: the cluster count failed; counting on this node');
      return this.#local.take(deviceId, operator);
    }
    return {
      ok: true,
      release: () => {
        void Promise.all([unbump(table, device), unbump(table, op)]).catch((err: unknown) =>
          this.#logger?.warn({ err, deviceId }, 'SMS limits: a slot not given back'),
        );
      },
    };
  }

  /** Removes the counts of hours before the last one, oldest first. */
  #prune(table: SharedTable<Count>, hour: number): void {
    for (const entry of table.list({ limit: 100 })) {
      if (hourOf(entry.key) >= hour - 1) return;
      // A stale revision means another node removed or raised it meanwhile: its business.
      table.remove(entry.key, entry.revision).catch(() => {});
    }
  }
}

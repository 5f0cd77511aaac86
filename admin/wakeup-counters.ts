/**
 * Wake-up counters of the usage report (issue 14), in the records store's
 * lmdb environment: every transport's recorder sends its wake-up outcomes
 * summed per hour, device and channel kind (RecordBatch.wakeups); they are
 * kept summed per hour, operator and channel kind,
 *
 *   wakeupAgg [hour, operator, channel] → [sent, failed, pruned, latencySumMs, ...latencyBuckets]
 *
 * so that the report reads the whole cluster's wake-ups as it reads the usage
 * counters. Latency is kept as the histogram mmgw_wakeup_latency_seconds has
 * it (WAKEUP_LATENCY_BOUNDS_S): the mean is exact, a quantile is the upper
 * bound of the bucket it falls in (what Prometheus' histogram_quantile would
 * interpolate within).
 */
import type { Database, RootDatabase } from 'lmdb';
import { z } from 'zod';
import { WAKEUP_LATENCY_BOUNDS_S, type WakeupDelta } from '../server/index.ts';

const HOUR_MS = 3_600_000;
const BUCKETS = WAKEUP_LATENCY_BOUNDS_S.length + 1;
const WIDTH = 4 + BUCKETS;

type Key = [number, string, string];

/** One channel kind's wake-ups over a report's range. */
export interface WakeupFigures {
  channel: string;
  sent: number;
  failed: number;
  pruned: number;
  /** Of the sent ones; absent when none was sent. */
  latency?: {
    meanSeconds: number;
    /** The upper bound of the bucket the median falls in; null: beyond the highest bound. */
    p50Seconds: number | null;
    p99Seconds: number | null;
  };
}

const count = z.number().finite().nonnegative().max(1e12);
const deltaShape = z.object({
  at: z.number().finite(),
  imei: z.string().max(32),
  operator: z.string().max(128).optional(),
  channel: z.string().min(1).max(16),
  sent: count,
  failed: count,
  pruned: count,
  latencySumMs: count,
  latencyBuckets: z.array(count).length(BUCKETS),
});

/** The deltas of a batch that are well formed (bus input: another node's recorder). */
export function validWakeups(raw: unknown): WakeupDelta[] {
  if (!Array.isArray(raw)) return [];
  const out: WakeupDelta[] = [];
  for (const d of raw) {
    const parsed = deltaShape.safeParse(d);
    if (parsed.success) out.push(parsed.data as WakeupDelta);
  }
  return out;
}

/** The upper bound (s) of the bucket where the q-quantile of `buckets` falls; null beyond the last. */
function quantile(buckets: number[], q: number): number | null {
  const total = buckets.reduce((a, b) => a + b, 0);
  const rank = Math.max(1, Math.ceil(q * total));
  let seen = 0;
  for (let i = 0; i < buckets.length; i++) {
    seen += buckets[i]!;
    if (seen >= rank) return WAKEUP_LATENCY_BOUNDS_S[i] ?? null;
  }
  return null;
}

export class WakeupCounters {
  private readonly db: Database<number[], Key>;

  constructor(env: RootDatabase) {
    this.db = env.openDB({ name: 'wakeupAgg' });
  }

  /** Inside the records store's write transaction. */
  add(deltas: WakeupDelta[], operatorOf: (imei: string) => string): void {
    const sums = new Map<string, { key: Key; v: number[] }>();
    for (const d of deltas) {
      const hour = Math.floor(d.at / HOUR_MS) * HOUR_MS;
      const key: Key = [hour, d.operator ?? operatorOf(d.imei), d.channel];
      const k = key.join('|');
      const row = sums.get(k) ?? { key, v: new Array<number>(WIDTH).fill(0) };
      for (const [i, n] of [d.sent, d.failed, d.pruned, d.latencySumMs, ...d.latencyBuckets].entries())
        row.v[i]! += Math.round(n);
      sums.set(k, row);
    }
    for (const { key, v } of sums.values()) {
      const before = this.db.get(key);
      this.db.put(
        key,
        v.map((n, i) => n + (before?.[i] ?? 0)),
      );
    }
  }

  /** Inside a transaction: drops hours before `cutoff`. */
  sweep(cutoff: number): void {
    for (const key of this.db.getKeys({ end: [cutoff] })) this.db.remove(key as Key);
  }

  /** Per channel kind over [from, to), of one operator when given; channels with nothing are left out. */
  report(from: number, to: number, operator?: string): WakeupFigures[] {
    const per = new Map<string, number[]>();
    for (const { key, value } of this.db.getRange({
      start: [Math.floor(from / HOUR_MS) * HOUR_MS],
      end: [to],
      snapshot: true,
    })) {
      const [, op, channel] = key;
      if (operator !== undefined && op !== operator) continue;
      const sum = per.get(channel) ?? new Array<number>(WIDTH).fill(0);
      for (const [i, n] of value.entries()) sum[i]! += n;
      per.set(channel, sum);
    }
    return [...per.entries()]
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([channel, v]) => {
        const [sent = 0, failed = 0, pruned = 0, sumMs = 0] = v;
        const buckets = v.slice(4);
        const figures: WakeupFigures = { channel, sent, failed, pruned };
        if (sent > 0)
          figures.latency = {
            meanSeconds: Math.round(sumMs / sent) / 1000,
            p50Seconds: quantile(buckets, 0.5),
            p99Seconds: quantile(buckets, 0.99),
          };
        return figures;
      });
  }
}

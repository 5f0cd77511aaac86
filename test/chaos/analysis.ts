/**
 * Judging a fault from the fleet's records (no I/O, unit-tested).
 *
 * Every item is a probe of its sender and of its receiver: it is good when
 * its first attempt was accepted and the receiving application saw it
 * within DELIVERY_MS of that attempt. A handset is affected by a fault when
 * one of its probes from the fault on is bad; it works again from the first
 * good probe after its last bad one, and that probe's start minus the fault's
 * time is its recovery time. An item is lost when it was accepted and not
 * seen by the deadline, doubled when the application saw it more than once,
 * out of order when an older item of the same sender and kind came after it.
 * For a fault nothing can work through, the times count from its end
 * (FaultWindow.timesFrom); for one made of steps (a rolling restart), from
 * the step the handset's last failed item fell in (FaultWindow.steps).
 */
import type { Item, ItemTable } from './records.ts';

/** The target: every fault recovers within 5 s (p99). */
export const DELIVERY_MS = 5000;

/** true good, false bad, undefined not known yet. */
export function probeOutcome(item: Item, now: number): boolean | undefined {
  if (!Number.isFinite(item.firstAttempt)) return undefined;
  const first = item.seen[0];
  if (item.errors.length === 0 && item.acceptedAt !== undefined && first !== undefined)
    return first - item.firstAttempt <= DELIVERY_MS;
  if (item.errors.length > 0) return false;
  return now - item.firstAttempt <= DELIVERY_MS ? undefined : false;
}

interface Probe {
  t: number;
  good: boolean;
}

/** The resolved probes of handset h that bear on time t0 onwards, oldest first. */
function probes(table: ItemTable, h: number, t0: number, tEnd: number, now: number): Probe[] {
  const out: Probe[] = [];
  const list = table.byHandset.get(h) ?? [];
  // Newest first; records arrive about in time order, so far older items end the walk (with a margin).
  for (let i = list.length - 1; i >= 0; i--) {
    const item = list[i]!;
    if (item.firstAttempt < t0 - 60_000) break;
    if (item.firstAttempt > tEnd) continue;
    const good = probeOutcome(item, now);
    if (good === undefined) continue;
    if (item.firstAttempt >= t0) out.push({ t: item.firstAttempt, good });
    // Under way when the fault came and bad: it counts from the fault on.
    else if (!good && item.firstAttempt >= t0 - 2 * DELIVERY_MS) out.push({ t: t0, good });
  }
  return out.sort((a, b) => a.t - b.t);
}

/**
 * undefined: not affected; { ms: undefined }: affected and not working again by tEnd.
 * `lastBadAt`: the start of its last failed item (t0 for one under way at the fault).
 */
export function recovery(
  table: ItemTable,
  h: number,
  t0: number,
  tEnd: number,
  now: number,
): { ms: number | undefined; lastBadAt: number } | undefined {
  const list = probes(table, h, t0, tEnd, now);
  let lastBad = -1;
  list.forEach((p, i) => {
    if (!p.good) lastBad = i;
  });
  if (lastBad < 0) return undefined;
  const back = list[lastBad + 1];
  return { ms: back === undefined ? undefined : Math.max(0, back.t - t0), lastBadAt: list[lastBad]!.t };
}

/** Works now: its last two resolved probes since `since` are good (and nothing older than DELIVERY_MS pending). */
export function healthy(table: ItemTable, h: number, since: number, now: number): boolean {
  const list = probes(table, h, since, now, now);
  const last = list.slice(-2);
  return last.length === 2 && last.every((p) => p.good);
}

export function percentile(sorted: number[], p: number): number | undefined {
  if (sorted.length === 0) return undefined;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}

export interface FaultFigures {
  handsets: number;
  items: number;
  accepted: number;
  notAccepted: number;
  lost: number;
  doubled: number;
  outOfOrder: number;
  affected: number;
  /** Affected handsets not working again by the end of the observation. */
  unrecovered: number;
  p50Ms?: number;
  p99Ms?: number;
  maxMs?: number;
  /** Mean over every handset of the time it did not work (unrecovered: until the end of the observation). */
  meanDowntimeMs: number;
  lostIds: string[];
  doubledIds: string[];
}

export interface FaultWindow {
  /** Traffic of this fault from here (its baseline starts). */
  from: number;
  /** The fault was injected. */
  t0: number;
  /**
   * Recovery times (p50, p99, max) count from here, when not from t0: the
   * end of a fault nothing can work through (every NATS server down), whose
   * target counts from their return. Downtime still counts from t0.
   */
  timesFrom?: number;
  /**
   * A fault made of steps (a rolling restart: one node after another): when
   * each began. A handset's recovery time then counts from the step its last
   * failed item fell in, not from the first step. Downtime still counts from t0.
   */
  steps?: number[];
  /** Traffic stopped. */
  to: number;
  /** Items seen after this are lost. */
  deadline: number;
  handsets: number;
}

/** The start of the last step begun by `t`. */
function stepOf(steps: number[] | undefined, t: number): number | undefined {
  let found: number | undefined;
  for (const s of steps ?? []) if (s <= t && (found === undefined || s > found)) found = s;
  return found;
}

export function judge(table: ItemTable, w: FaultWindow, now = w.deadline): FaultFigures {
  const items = [...table.items.values()].filter((i) => i.firstAttempt >= w.from && i.firstAttempt <= w.to);
  const accepted = items.filter((i) => i.acceptedAt !== undefined);
  const lost = accepted.filter((i) => !i.seen.some((t) => t <= w.deadline));
  const doubled = items.filter((i) => i.seen.length > 1);
  // Per stream (kind, sender): an item first seen after a newer one of the stream was.
  const streams = new Map<string, Item[]>();
  for (const i of items) {
    if (i.seen.length === 0) continue;
    const key = `${i.kind}-${i.from}`;
    streams.set(key, [...(streams.get(key) ?? []), i]);
  }
  let outOfOrder = 0;
  for (const list of streams.values()) {
    list.sort((a, b) => b.seq - a.seq);
    let earliestNewer = Number.POSITIVE_INFINITY;
    for (const i of list) {
      const first = i.seen[0]!;
      if (first > earliestNewer) outOfOrder++;
      earliestNewer = Math.min(earliestNewer, first);
    }
  }
  const times: number[] = [];
  let affected = 0;
  let unrecovered = 0;
  let downtime = 0;
  for (let h = 0; h < w.handsets; h++) {
    const r = recovery(table, h, w.t0, w.to, now);
    if (!r) continue;
    affected++;
    if (r.ms === undefined) {
      unrecovered++;
      downtime += w.to - w.t0;
    } else {
      const from = w.timesFrom ?? stepOf(w.steps, r.lastBadAt) ?? w.t0;
      times.push(Math.max(0, r.ms - (from - w.t0)));
      downtime += r.ms;
    }
  }
  times.sort((a, b) => a - b);
  return {
    handsets: w.handsets,
    items: items.length,
    accepted: accepted.length,
    notAccepted: items.length - accepted.length,
    lost: lost.length,
    doubled: doubled.length,
    outOfOrder,
    affected,
    unrecovered,
    ...(times.length
      ? { p50Ms: percentile(times, 50), p99Ms: percentile(times, 99), maxMs: times.at(-1) }
      : {}),
    meanDowntimeMs: w.handsets ? downtime / w.handsets : 0,
    lostIds: lost.map((i) => i.id).slice(0, 20),
    doubledIds: doubled.map((i) => i.id).slice(0, 20),
  };
}

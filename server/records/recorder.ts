/**
 * The Recorder every role writes through: log records and usage deltas are
 * batched in memory and sent to the admin role on Subjects.records as
 * `{logs, usage}`. The admin answers once the batch is stored (lmdb, before
 * the answer), so a batch is only forgotten here after it is on disk; one that
 * is not answered (no admin yet, timeout) is kept and sent again with the
 * next flush, up to a bound, beyond which the oldest records are dropped and
 * counted. Never throws, never blocks the caller.
 *
 * Usage deltas are summed per (hour, imei, operator, service) before they
 * leave, so a chatty device costs one counter row per hour, not one per frame;
 * wake-up outcomes likewise per (hour, imei, operator, channel), in the
 * batch's `wakeups` (an admin of an older release reads past them).
 */
import type { Logger } from 'pino';
import { type Bus, Subjects } from '../bus/bus.ts';
import {
  type DeviceLogRecord,
  type Recorder,
  type UsageDelta,
  WAKEUP_LATENCY_BOUNDS_S,
  type WakeupDelta,
  type WakeupOutcome,
} from './types.ts';

export interface RecordBatch {
  logs: DeviceLogRecord[];
  usage: UsageDelta[];
  /** Absent from recorders of releases before wake-ups were recorded. */
  wakeups?: WakeupDelta[];
}

export interface BusRecorderOptions {
  bus: Bus;
  nodeId: string;
  /** How often a partial batch is sent. Default 1000 ms. */
  flushMs?: number;
  /** A batch is sent at once when it holds this many log records. Default 500. */
  maxBatch?: number;
  /** Records kept while the admin cannot be reached; beyond it the oldest are dropped. Default 20000. */
  maxPending?: number;
  /** How long to wait for the admin's answer. Default 10000 ms. */
  ackTimeoutMs?: number;
  logger?: Logger;
  now?: () => number;
}

export interface BusRecorder extends Recorder {
  /** Records dropped so far (admin unreachable for too long, or the recorder closed). */
  dropped(): number;
}

const HOUR_MS = 3_600_000;
const MESSAGE_MAX = 500;
const DETAIL_KEYS_MAX = 16;
const DETAIL_VALUE_MAX = 200;

/** Bounded copies: a record is small whatever a caller passes in. */
function boundedLog(r: DeviceLogRecord): DeviceLogRecord {
  const out: DeviceLogRecord = { ...r };
  if (typeof out.message === 'string' && out.message.length > MESSAGE_MAX)
    out.message = `${out.message.slice(0, MESSAGE_MAX - 1)}…`;
  if (out.detail) {
    const detail: Record<string, string | number | boolean> = {};
    for (const [k, v] of Object.entries(out.detail).slice(0, DETAIL_KEYS_MAX)) {
      detail[k.slice(0, 64)] = typeof v === 'string' ? v.slice(0, DETAIL_VALUE_MAX) : v;
    }
    out.detail = detail;
  }
  return out;
}

const COUNTERS = ['logins', 'logouts', 'messagesIn', 'messagesOut', 'bytesIn', 'bytesOut'] as const;

export function createBusRecorder(options: BusRecorderOptions): BusRecorder {
  const { bus, nodeId, logger } = options;
  const now = options.now ?? Date.now;
  const maxBatch = options.maxBatch ?? 500;
  const maxPending = options.maxPending ?? 20_000;
  const ackTimeoutMs = options.ackTimeoutMs ?? 10_000;
  let logs: DeviceLogRecord[] = [];
  let usage = new Map<string, UsageDelta>();
  let wakeups = new Map<string, WakeupDelta>();
  let dropped = 0;
  let closed = false;
  let chain: Promise<void> = Promise.resolve();
  let lastWarnAt = 0;

  const timer = setInterval(() => {
    if (logs.length > 0 || usage.size > 0 || wakeups.size > 0) void flush();
  }, options.flushMs ?? 1000);
  timer.unref();

  const warn = (err: unknown, count: number) => {
    // One line a minute at most: an admin that is away must not flood the log.
    if (now() - lastWarnAt < 60_000) return;
    lastWarnAt = now();
    logger?.warn({ err, pending: count, dropped }, 'records not stored yet (admin unreachable); will retry');
  };

  const trim = () => {
    const excess = logs.length - maxPending;
    if (excess > 0) {
      logs = logs.slice(excess);
      dropped += excess;
    }
    // Usage rows are few (one per device-hour); bound them too.
    if (usage.size > maxPending) {
      const keep = [...usage.entries()].slice(usage.size - maxPending);
      dropped += usage.size - keep.length;
      usage = new Map(keep);
    }
    if (wakeups.size > maxPending) {
      const keep = [...wakeups.entries()].slice(wakeups.size - maxPending);
      dropped += wakeups.size - keep.length;
      wakeups = new Map(keep);
    }
  };

  /** Adds an outcome (or a delta sent back after a failed send) to its row of the hour. */
  const addWakeup = (d: WakeupOutcome & { at: number }, sums?: WakeupDelta) => {
    const hour = Math.floor(d.at / HOUR_MS) * HOUR_MS;
    const key = `${hour}|${d.imei}|${d.operator ?? ''}|${d.channel}`;
    let row = wakeups.get(key);
    if (!row) {
      row = {
        at: hour,
        imei: d.imei,
        channel: d.channel,
        sent: 0,
        failed: 0,
        pruned: 0,
        latencySumMs: 0,
        latencyBuckets: WAKEUP_LATENCY_BOUNDS_S.map(() => 0).concat(0),
      };
      if (d.operator) row.operator = d.operator;
      wakeups.set(key, row);
    }
    const count = (v: number | undefined) => (typeof v === 'number' && Number.isFinite(v) && v > 0 ? v : 0);
    row.sent += count(d.sent);
    row.failed += count(d.failed);
    row.pruned += count(d.pruned);
    if (sums) {
      row.latencySumMs += sums.latencySumMs;
      for (const [i, n] of sums.latencyBuckets.entries()) row.latencyBuckets[i]! += n;
    } else if (typeof d.latencyMs === 'number' && Number.isFinite(d.latencyMs) && d.latencyMs >= 0) {
      row.latencySumMs += d.latencyMs;
      const i = WAKEUP_LATENCY_BOUNDS_S.findIndex((b) => d.latencyMs! <= b * 1000);
      row.latencyBuckets[i === -1 ? WAKEUP_LATENCY_BOUNDS_S.length : i]! += 1;
    }
  };

  const addUsage = (d: UsageDelta) => {
    const hour = Math.floor(d.at / HOUR_MS) * HOUR_MS;
    const key = `${hour}|${d.imei}|${d.operator ?? ''}|${d.service}`;
    let row = usage.get(key);
    if (!row) {
      row = { at: hour, imei: d.imei, service: d.service };
      if (d.operator) row.operator = d.operator;
      usage.set(key, row);
    }
    for (const c of COUNTERS) {
      const v = d[c];
      if (typeof v === 'number' && Number.isFinite(v) && v > 0) row[c] = (row[c] ?? 0) + v;
    }
  };

  const sendOnce = async (): Promise<void> => {
    if (logs.length === 0 && usage.size === 0 && wakeups.size === 0) return;
    const batch: RecordBatch = { logs, usage: [...usage.values()] };
    if (wakeups.size > 0) batch.wakeups = [...wakeups.values()];
    logs = [];
    usage = new Map();
    wakeups = new Map();
    try {
      await bus.request(Subjects.records, batch, { timeoutMs: ackTimeoutMs });
    } catch (err) {
      const sentWakeups = batch.wakeups ?? [];
      if (closed) {
        dropped += batch.logs.length + batch.usage.length + sentWakeups.length;
        return;
      }
      // Put it back in front of what came meanwhile and try again with the next flush.
      logs = [...batch.logs, ...logs];
      const later = usage;
      usage = new Map();
      for (const d of batch.usage) addUsage(d);
      for (const d of later.values()) addUsage(d);
      const laterWakeups = wakeups;
      wakeups = new Map();
      for (const d of [...sentWakeups, ...laterWakeups.values()]) addWakeup(d, d);
      trim();
      warn(err, logs.length + usage.size + wakeups.size);
    }
  };

  const flush = (): Promise<void> => {
    chain = chain.then(sendOnce).catch((err) => logger?.debug({ err }, 'recorder flush failed'));
    return chain;
  };

  return {
    log(record) {
      if (closed) return;
      try {
        logs.push(boundedLog({ ...record, at: record.at ?? now(), node: nodeId } as DeviceLogRecord));
        if (logs.length > maxPending) trim();
        if (logs.length >= maxBatch) void flush();
      } catch (err) {
        logger?.debug({ err }, 'log record ignored');
      }
    },
    usage(delta) {
      if (closed) return;
      try {
        addUsage({ ...delta, at: delta.at ?? now() } as UsageDelta);
        if (usage.size > maxPending) trim();
      } catch (err) {
        logger?.debug({ err }, 'usage delta ignored');
      }
    },
    wakeup(outcome) {
      if (closed) return;
      try {
        addWakeup({ ...outcome, at: outcome.at ?? now() });
        if (wakeups.size > maxPending) trim();
      } catch (err) {
        logger?.debug({ err }, 'wake-up outcome ignored');
      }
    },
    flush,
    async close() {
      if (closed) return;
      clearInterval(timer);
      await flush();
      closed = true;
      const left = logs.length + usage.size + wakeups.size;
      if (left > 0) {
        dropped += left;
        logs = [];
        usage = new Map();
        wakeups = new Map();
        logger?.warn({ dropped: left }, 'records not stored at close (admin unreachable)');
      }
    },
    dropped: () => dropped,
  };
}

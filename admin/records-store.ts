/**
 * Where the admin role keeps what every node records: per-device log records,
 * hourly usage counters and the audit log, in one lmdb environment at
 * `<data>/records`.
 *
 *   logs      [imei, at, seq]                  → DeviceLogRecord   (a device's log, in time order)
 *   logTime   [at, imei, seq]                  → approx. bytes     (age and size retention, oldest first)
 *   outsiders [imei, at, seq]                  → 1                 (which of a device's records outsiders caused)
 *   security  [at, seq]                        → DeviceLogRecord   (outsiders' records for IMEIs not provisioned)
 *   usage     [hour, operator, service, imei]  → counters          (per device)
 *   usageAgg  [hour, operator, service]        → counters          (reports read only these)
 *   audit     [at, seq]                        → AuditEntry
 *   wakeupAgg [hour, operator, channel]        → wake-up counters  (wakeup-counters.ts)
 *
 * Retention keeps the disk bounded: log records older than maxAgeDays go, the
 * oldest go first once their total passes maxBytes, and one device keeps at
 * most maxPerDevice records of its own (its oldest go first), so a busy or
 * looping device cannot push out everyone else's history. Usage counters are
 * small (one row per device-hour) and kept for usageMaxAgeDays.
 *
 * Records that outsiders cause (OUTSIDER_LOG_KINDS: refused Hello/Resume,
 * which anyone can send naming any IMEI) cannot flood a device's log: a
 * device keeps at most maxOutsiderPerDevice of them, apart from its own
 * records, so they never push those out. Those naming an IMEI the registry
 * does not know (`operatorOf` answers undefined) go to the security log
 * instead, which keeps at most securityMaxRecords for securityMaxAgeDays.
 * (The edge already samples them: at most about one a minute per device or
 * source address, server/edge/refusal-records.ts.)
 *
 * A batch is written in one transaction before write() resolves, and the
 * recorder is only answered after that: a crash loses nothing acknowledged.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { type Database, open, type RootDatabase } from 'lmdb';
import type { Logger } from 'pino';
import { z } from 'zod';
import {
  type DeviceLogKind,
  type DeviceLogRecord,
  OUTSIDER_LOG_KINDS,
  type RecordBatch,
  type UsageDelta,
} from '../server/index.ts';
import { validWakeups, WakeupCounters, type WakeupFigures } from './wakeup-counters.ts';

export const DAY_MS = 86_400_000;
export const HOUR_MS = 3_600_000;

export interface RetentionOptions {
  /** Log records older than this go. Default 30. */
  maxAgeDays?: number;
  /** Log records beyond this many bytes (approximate) go, oldest first. Default 1 GiB. */
  maxBytes?: number;
  /** One device keeps at most this many log records of its own. Default 20000. */
  maxPerDevice?: number;
  /** One device keeps at most this many records caused by outsiders (refused attempts), besides its own. Default 500. */
  maxOutsiderPerDevice?: number;
  /** The security log (outsiders' records for IMEIs not provisioned) keeps at most this many. Default 100,000. */
  securityMaxRecords?: number;
  /** Security log records older than this go. Default 7. */
  securityMaxAgeDays?: number;
  /** Usage counters older than this go. Default 400. */
  usageMaxAgeDays?: number;
}

export interface RecordsStoreOptions extends RetentionOptions {
  dataDir: string;
  now?: () => number;
  logger?: Logger;
  /** How often the age sweep runs. Default 60 s. */
  sweepMs?: number;
  /**
   * The operator of a device, for usage deltas that come without one (mail and
   * IM counters are written by transport nodes, which do not hold the
   * registry), so that reports by operator include every service. Undefined
   * for an IMEI the registry does not know: outsiders' records naming it go
   * to the security log. Absent: every IMEI counts as known.
   */
  operatorOf?: (imei: string) => string | undefined;
}

/** [logins, logouts, messagesIn, messagesOut, bytesIn, bytesOut] */
type Counters = [number, number, number, number, number, number];
export const COUNTER_NAMES = [
  'logins',
  'logouts',
  'messagesIn',
  'messagesOut',
  'bytesIn',
  'bytesOut',
] as const;
export type UsageCounters = Record<(typeof COUNTER_NAMES)[number], number>;

export interface AuditEntry {
  id: string;
  at: number;
  actor: string;
  role: string;
  address?: string;
  action: string;
  target: string;
  before?: unknown;
  after?: unknown;
}

export interface LogQueryOptions {
  from?: number;
  to?: number;
  kinds?: DeviceLogKind[];
  limit: number;
  order: 'asc' | 'desc';
  /** Opaque cursor from a previous page. */
  cursor?: string;
}

export interface UsageQueryOptions {
  from: number;
  to: number;
  granularity: 'hour' | 'day';
  service?: string;
  operator?: string;
  groupBy: 'none' | 'service' | 'operator';
}

export interface UsageRow extends UsageCounters {
  bucket: number;
  service?: string;
  operator?: string;
}

const zero = (): Counters => [0, 0, 0, 0, 0, 0];

function countersOf(d: UsageDelta): Counters {
  const n = (v: number | undefined) =>
    typeof v === 'number' && Number.isFinite(v) && v > 0 ? Math.round(v) : 0;
  return [n(d.logins), n(d.logouts), n(d.messagesIn), n(d.messagesOut), n(d.bytesIn), n(d.bytesOut)];
}

function add(into: Counters, c: Counters): Counters {
  for (let i = 0; i < 6; i++) into[i]! += c[i]!;
  return into;
}

export function countersView(c: Counters): UsageCounters {
  return {
    logins: c[0],
    logouts: c[1],
    messagesIn: c[2],
    messagesOut: c[3],
    bytesIn: c[4],
    bytesOut: c[5],
  };
}

/** Rough stored size of a log record (key, value, index), for the byte budget. */
function sizeOf(r: DeviceLogRecord): number {
  return 64 + JSON.stringify(r).length;
}

type LogKey = [string, number, number];
type TimeKey = [number, string, number];

function isOutsider(r: DeviceLogRecord): boolean {
  return OUTSIDER_LOG_KINDS.has(r.kind);
}

export class RecordsStore {
  readonly path: string;
  private readonly env: RootDatabase;
  private readonly logs: Database<DeviceLogRecord, LogKey>;
  private readonly logTime: Database<number, TimeKey>;
  private readonly outsiders: Database<number, LogKey>;
  private readonly security: Database<DeviceLogRecord, [number, number]>;
  private readonly usage: Database<Counters, [number, string, string, string]>;
  private readonly usageAgg: Database<Counters, [number, string, string]>;
  private readonly audit: Database<AuditEntry, [number, number]>;
  private readonly wakeups: WakeupCounters;
  private readonly now: () => number;
  private readonly logger: Logger | undefined;
  private readonly maxAgeMs: number;
  private readonly maxBytes: number;
  private readonly maxPerDevice: number;
  private readonly maxOutsiderPerDevice: number;
  private readonly securityMaxRecords: number;
  private readonly securityMaxAgeMs: number;
  private readonly operatorOf: ((imei: string) => string | undefined) | undefined;
  private readonly usageMaxAgeMs: number;
  /** Log records per device, outsiders' included. */
  private readonly perDevice = new Map<string, number>();
  /** Outsiders' records per device (counted in perDevice too). */
  private readonly perDeviceOutsider = new Map<string, number>();
  private securityCount = 0;
  private totalBytes = 0;
  private seq = 0;
  private readonly timer: NodeJS.Timeout;
  private writes: Promise<unknown> = Promise.resolve();
  private closed = false;

  private constructor(path: string, options: RecordsStoreOptions) {
    this.path = path;
    this.now = options.now ?? Date.now;
    this.logger = options.logger;
    this.maxAgeMs = (options.maxAgeDays ?? 30) * DAY_MS;
    this.maxBytes = options.maxBytes ?? 1024 ** 3;
    this.maxPerDevice = options.maxPerDevice ?? 20_000;
    this.maxOutsiderPerDevice = options.maxOutsiderPerDevice ?? 500;
    this.securityMaxRecords = options.securityMaxRecords ?? 100_000;
    this.securityMaxAgeMs = (options.securityMaxAgeDays ?? 7) * DAY_MS;
    this.usageMaxAgeMs = (options.usageMaxAgeDays ?? 400) * DAY_MS;
    this.operatorOf = options.operatorOf;
    this.env = open({ path, maxDbs: 10, noSync: false });
    this.logs = this.env.openDB({ name: 'logs' });
    this.logTime = this.env.openDB({ name: 'logTime' });
    this.outsiders = this.env.openDB({ name: 'outsiders' });
    this.security = this.env.openDB({ name: 'security' });
    this.usage = this.env.openDB({ name: 'usage' });
    this.usageAgg = this.env.openDB({ name: 'usageAgg' });
    this.audit = this.env.openDB({ name: 'audit' });
    this.wakeups = new WakeupCounters(this.env);
    // Counts and bytes are rebuilt from the index: cheaper than keeping them transactional.
    for (const { key, value } of this.logTime.getRange({ snapshot: true })) {
      this.totalBytes += typeof value === 'number' ? value : 0;
      this.perDevice.set(key[1], (this.perDevice.get(key[1]) ?? 0) + 1);
      if (key[2] > this.seq) this.seq = key[2];
    }
    for (const key of this.outsiders.getKeys({ snapshot: true })) {
      const imei = (key as LogKey)[0];
      this.perDeviceOutsider.set(imei, (this.perDeviceOutsider.get(imei) ?? 0) + 1);
    }
    for (const key of this.security.getKeys({ snapshot: true })) {
      this.securityCount++;
      const seq = (key as [number, number])[1];
      if (seq > this.seq) this.seq = seq;
    }
    this.timer = setInterval(() => void this.sweep(), options.sweepMs ?? 60_000);
    this.timer.unref();
  }

  static async open(options: RecordsStoreOptions): Promise<RecordsStore> {
    const path = join(options.dataDir, 'records');
    mkdirSync(path, { recursive: true });
    const store = new RecordsStore(path, options);
    await store.sweep();
    return store;
  }

  stats(): { logRecords: number; logBytes: number; devices: number; securityRecords: number } {
    let n = 0;
    for (const c of this.perDevice.values()) n += c;
    return {
      logRecords: n,
      logBytes: this.totalBytes,
      devices: this.perDevice.size,
      securityRecords: this.securityCount,
    };
  }

  /** Stores a batch in one transaction; resolves once it is committed. */
  async write(batch: RecordBatch): Promise<void> {
    if (this.closed) throw new Error('records store is closed');
    const logs = Array.isArray(batch.logs) ? batch.logs.filter(validLog) : [];
    const usage = Array.isArray(batch.usage) ? batch.usage.filter(validUsage) : [];
    const wakeups = validWakeups(batch.wakeups);
    if (logs.length === 0 && usage.length === 0 && wakeups.length === 0) return;
    const p = this.env.transaction(() => {
      for (const r of logs) {
        const seq = ++this.seq;
        const outsider = isOutsider(r);
        if (outsider && !this.knownDevice(r.imei)) {
          this.security.put([r.at, seq], r);
          if (++this.securityCount > this.securityMaxRecords) {
            this.trimSecurity(this.securityCount - Math.floor(this.securityMaxRecords * 0.9));
          }
          continue;
        }
        const size = sizeOf(r);
        this.logs.put([r.imei, r.at, seq], r);
        this.logTime.put([r.at, r.imei, seq], size);
        this.totalBytes += size;
        const count = (this.perDevice.get(r.imei) ?? 0) + 1;
        this.perDevice.set(r.imei, count);
        const outsiderCount = this.perDeviceOutsider.get(r.imei) ?? 0;
        if (outsider) {
          this.outsiders.put([r.imei, r.at, seq], 1);
          this.perDeviceOutsider.set(r.imei, outsiderCount + 1);
          if (outsiderCount + 1 > this.maxOutsiderPerDevice) {
            this.trimOutsiders(r.imei, outsiderCount + 1 - Math.floor(this.maxOutsiderPerDevice * 0.9));
          }
        } else if (count - outsiderCount > this.maxPerDevice) {
          this.trimDevice(r.imei, count - outsiderCount - Math.floor(this.maxPerDevice * 0.9));
        }
      }
      const agg = new Map<string, { key: [number, string, string]; c: Counters }>();
      for (const d of usage) {
        const hour = Math.floor(d.at / HOUR_MS) * HOUR_MS;
        const op = d.operator ?? this.deviceOperator(d.imei);
        const c = countersOf(d);
        const key: [number, string, string, string] = [hour, op, d.service, d.imei];
        this.usage.put(key, add((this.usage.get(key)?.slice() as Counters | undefined) ?? zero(), c));
        const ak = `${hour}|${op}|${d.service}`;
        const a = agg.get(ak) ?? { key: [hour, op, d.service], c: zero() };
        add(a.c, c);
        agg.set(ak, a);
      }
      for (const { key, c } of agg.values()) {
        this.usageAgg.put(key, add((this.usageAgg.get(key)?.slice() as Counters | undefined) ?? zero(), c));
      }
      this.wakeups.add(wakeups, (imei) => this.deviceOperator(imei));
      if (this.totalBytes > this.maxBytes) this.trimOldest(this.totalBytes - Math.floor(this.maxBytes * 0.9));
    });
    this.writes = p.catch(() => {});
    await p;
  }

  /** '' when unknown, or when the lookup fails (a registry closing): the counters still count. */
  private deviceOperator(imei: string): string {
    try {
      return this.operatorOf?.(imei) ?? '';
    } catch {
      return '';
    }
  }

  /** Would an IMEI be known to the registry? Yes when it cannot tell (no lookup, or it fails). */
  private knownDevice(imei: string): boolean {
    if (this.operatorOf === undefined) return true;
    try {
      return this.operatorOf(imei) !== undefined;
    } catch {
      return true;
    }
  }

  /** Inside a write transaction: drops a device's oldest `count` records of its own (not outsiders'). */
  private trimDevice(imei: string, count: number): void {
    let n = 0;
    for (const { key, value } of this.logs.getRange({
      start: [imei],
      end: [imei, Number.MAX_SAFE_INTEGER],
    })) {
      if (n >= count) break;
      // Skipped: at most maxOutsiderPerDevice of them.
      if (isOutsider(value)) continue;
      const [, at, seq] = key;
      this.dropLog(at, imei, seq, this.logTime.get([at, imei, seq]) ?? 0);
      n++;
    }
  }

  /** Inside a write transaction: drops a device's oldest `count` records caused by outsiders. */
  private trimOutsiders(imei: string, count: number): void {
    for (const key of this.outsiders.getKeys({
      start: [imei],
      end: [imei, Number.MAX_SAFE_INTEGER],
      limit: count,
    })) {
      const [, at, seq] = key as LogKey;
      this.dropLog(at, imei, seq, this.logTime.get([at, imei, seq]) ?? 0);
    }
  }

  /** Inside a write transaction: drops the oldest records until `bytes` are freed. */
  private trimOldest(bytes: number): void {
    let freed = 0;
    for (const { key, value } of this.logTime.getRange({})) {
      if (freed >= bytes) break;
      const [at, imei, seq] = key;
      this.dropLog(at, imei, seq, value);
      freed += value;
    }
  }

  /** Inside a write transaction: drops the oldest `count` records of the security log. */
  private trimSecurity(count: number): void {
    for (const key of this.security.getKeys({ limit: count })) {
      this.security.remove(key as [number, number]);
      this.securityCount--;
    }
  }

  /** Inside a write transaction: removes one log record, its index entries and its counts. */
  private dropLog(at: number, imei: string, seq: number, size: number): void {
    this.logs.remove([imei, at, seq]);
    this.logTime.remove([at, imei, seq]);
    this.totalBytes -= size;
    if (this.outsiders.doesExist([imei, at, seq])) {
      this.outsiders.remove([imei, at, seq]);
      decrement(this.perDeviceOutsider, imei);
    }
    decrement(this.perDevice, imei);
  }

  /** Age retention: old log records, usage counters and audit entries. Runs every sweepMs. */
  async sweep(): Promise<void> {
    if (this.closed) return;
    const now = this.now();
    const logCutoff = now - this.maxAgeMs;
    const usageCutoff = now - this.usageMaxAgeMs;
    // In slices, so one sweep never holds the write lock for long.
    for (;;) {
      let more = false;
      await this.env.transaction(() => {
        let n = 0;
        for (const { key, value } of this.logTime.getRange({ end: [logCutoff] })) {
          if (++n > 20_000) {
            more = true;
            break;
          }
          const [at, imei, seq] = key;
          this.dropLog(at, imei, seq, value);
        }
        for (const key of this.security.getKeys({ end: [now - this.securityMaxAgeMs] })) {
          if (++n > 20_000) {
            more = true;
            break;
          }
          this.security.remove(key as [number, number]);
          this.securityCount--;
        }
        let u = 0;
        for (const key of this.usage.getKeys({ end: [usageCutoff] })) {
          if (++u > 20_000) {
            more = true;
            break;
          }
          this.usage.remove(key as [number, string, string, string]);
        }
        for (const key of this.usageAgg.getKeys({ end: [usageCutoff] }))
          this.usageAgg.remove(key as [number, string, string]);
        this.wakeups.sweep(usageCutoff);
        for (const key of this.audit.getKeys({ end: [now - 400 * DAY_MS] }))
          this.audit.remove(key as [number, number]);
      });
      if (!more || this.closed) break;
    }
  }

  // ---- reads -----------------------------------------------------------------

  queryLogs(imei: string, o: LogQueryOptions): { items: DeviceLogRecord[]; next?: string } {
    const from = o.from ?? 0;
    const to = o.to ?? Number.MAX_SAFE_INTEGER;
    const kinds = o.kinds && o.kinds.length > 0 ? new Set<string>(o.kinds) : undefined;
    let lo: LogKey = [imei, from, 0];
    let hi: LogKey = [imei, to, Number.MAX_SAFE_INTEGER];
    const cursor = parseCursor(o.cursor);
    if (cursor) {
      if (o.order === 'asc') lo = [imei, cursor[0], cursor[1] + 1];
      else hi = [imei, cursor[0], cursor[1] - 1];
    }
    const range =
      o.order === 'asc'
        ? this.logs.getRange({ start: lo, end: hi, snapshot: true })
        : this.logs.getRange({ start: hi, end: lo, reverse: true, snapshot: true });
    const items: DeviceLogRecord[] = [];
    let last: LogKey | undefined;
    let scanned = 0;
    for (const { key, value } of range) {
      // A sparse kind filter must not scan a whole busy device per page.
      if (++scanned > 50_000) break;
      if (kinds && !kinds.has(value.kind)) continue;
      if (items.length === o.limit) return { items, next: last ? `${last[1]}.${last[2]}` : undefined };
      items.push(value);
      last = key;
    }
    return { items };
  }

  /**
   * The security log: outsiders' records naming IMEIs that are not
   * provisioned, newest first. (Not served by the admin API yet.)
   */
  querySecurity(o: TimePageOptions): { items: DeviceLogRecord[]; next?: string } {
    return newestFirst(this.security, o, () => true);
  }

  usageReport(o: UsageQueryOptions): { rows: UsageRow[]; totals: UsageCounters } {
    const step = o.granularity === 'hour' ? HOUR_MS : DAY_MS;
    const first = Math.floor(o.from / step) * step;
    const groups = new Map<string, Map<number, Counters>>();
    const totals = zero();
    const startHour = Math.floor(o.from / HOUR_MS) * HOUR_MS;
    for (const { key, value } of this.usageAgg.getRange({
      start: [startHour],
      end: [o.to],
      snapshot: true,
    })) {
      const [hour, op, service] = key;
      if (hour < o.from - (o.from % HOUR_MS) || hour >= o.to) continue;
      if (o.service !== undefined && service !== o.service) continue;
      if (o.operator !== undefined && op !== o.operator) continue;
      const group = o.groupBy === 'service' ? service : o.groupBy === 'operator' ? op : '';
      const bucket = Math.floor(hour / step) * step;
      let g = groups.get(group);
      if (!g) groups.set(group, (g = new Map()));
      g.set(bucket, add(g.get(bucket) ?? zero(), value));
      add(totals, value);
    }
    if (groups.size === 0 && o.groupBy === 'none') groups.set('', new Map());
    const rows: UsageRow[] = [];
    for (let bucket = first; bucket < o.to; bucket += step) {
      for (const [group, g] of [...groups.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
        const row: UsageRow = { bucket, ...countersView(g.get(bucket) ?? zero()) };
        if (o.groupBy === 'service') row.service = group;
        if (o.groupBy === 'operator') row.operator = group;
        rows.push(row);
      }
    }
    return { rows, totals: countersView(totals) };
  }

  /** Wake-ups per channel kind over [from, to), of one operator when given. */
  wakeupReport(from: number, to: number, operator?: string): WakeupFigures[] {
    return this.wakeups.report(from, to, operator);
  }

  /** One device's counters over a time range (summed), from the per-device rows. */
  deviceUsage(imei: string, from: number, to: number): UsageCounters {
    const total = zero();
    for (const { key, value } of this.usage.getRange({
      start: [Math.floor(from / HOUR_MS) * HOUR_MS],
      end: [to],
      snapshot: true,
    })) {
      if (key[3] === imei) add(total, value);
    }
    return countersView(total);
  }

  // ---- audit -----------------------------------------------------------------

  async addAudit(entry: Omit<AuditEntry, 'id' | 'at'> & { at?: number }): Promise<AuditEntry> {
    const at = entry.at ?? this.now();
    const seq = ++this.seq;
    const stored: AuditEntry = { ...entry, id: `${at}.${seq}`, at };
    await this.audit.put([at, seq], stored);
    return stored;
  }

  queryAudit(o: {
    from?: number;
    to?: number;
    actor?: string;
    action?: string;
    target?: string;
    limit: number;
    cursor?: string;
  }): { items: AuditEntry[]; next?: string } {
    return newestFirst(
      this.audit,
      o,
      (value) =>
        (o.actor === undefined || value.actor === o.actor) &&
        (o.action === undefined || value.action.startsWith(o.action)) &&
        (o.target === undefined || value.target.includes(o.target)),
    );
  }

  // ---- bench support ------------------------------------------------------------

  /**
   * Adds usage rows straight into the store, many per transaction (the benchmark
   * generates 30 days of counters this way). Same layout as write().
   */
  async bulkUsage(deltas: UsageDelta[]): Promise<void> {
    await this.write({ logs: [], usage: deltas });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    await this.writes;
    await this.env.close();
  }
}

interface TimePageOptions {
  from?: number;
  to?: number;
  limit: number;
  /** Opaque cursor from a previous page. */
  cursor?: string;
}

/** One page of a [at, seq]-keyed database, newest first, of the values `accept` takes. */
function newestFirst<T>(
  db: Database<T, [number, number]>,
  o: TimePageOptions,
  accept: (value: T) => boolean,
): { items: T[]; next?: string } {
  const cursor = parseCursor(o.cursor);
  const hi: [number, number] = cursor
    ? [cursor[0], cursor[1] - 1]
    : [o.to ?? Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER];
  const items: T[] = [];
  let last: [number, number] | undefined;
  for (const { key, value } of db.getRange({
    start: hi,
    end: [o.from ?? 0, 0],
    reverse: true,
    snapshot: true,
  })) {
    if (!accept(value)) continue;
    if (items.length === o.limit) return { items, next: last ? `${last[0]}.${last[1]}` : undefined };
    items.push(value);
    last = key;
  }
  return { items };
}

function decrement(counts: Map<string, number>, key: string): void {
  const left = (counts.get(key) ?? 1) - 1;
  if (left <= 0) counts.delete(key);
  else counts.set(key, left);
}

function parseCursor(cursor: string | undefined): [number, number] | undefined {
  if (cursor === undefined) return undefined;
  const m = /^(\d{1,16})\.(\d{1,16})$/.exec(cursor);
  return m ? [Number(m[1]), Number(m[2])] : undefined;
}

// What recorders on other nodes send is bus input: each record is checked before it is stored; the
// rest of a record (message, detail, counters) is trimmed and summed defensively where it is used.
const logRecordShape = z.looseObject({
  imei: z.string().min(1).max(32),
  at: z.number(),
  kind: z.string(),
  node: z.string(),
});

const usageDeltaShape = z.looseObject({
  imei: z.string().max(32),
  at: z.number(),
  service: z.enum(['session', 'mail', 'im']),
  operator: z.string().optional(),
});

function validLog(r: unknown): r is DeviceLogRecord {
  return logRecordShape.safeParse(r).success;
}

function validUsage(d: unknown): d is UsageDelta {
  return usageDeltaShape.safeParse(d).success;
}

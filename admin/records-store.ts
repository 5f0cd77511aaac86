/**
 * Where the admin role keeps what every node records: per-device log records,
 * hourly usage counters and the audit log, in one lmdb environment at
 * `<data>/records`.
 *
 *   logs      [imei, at, seq]                  → DeviceLogRecord   (a device's log, in time order)
 *   logTime   [at, imei, seq]                  → approx. bytes     (age and size retention, oldest first)
 *   usage     [hour, operator, service, imei]  → counters          (per device)
 *   usageAgg  [hour, operator, service]        → counters          (reports read only these)
 *   audit     [at, seq]                        → AuditEntry
 *
 * Retention keeps the disk bounded: log records older than maxAgeDays go, the
 * oldest go first once their total passes maxBytes, and one device keeps at
 * most maxPerDevice records (its oldest go first), so a busy or looping
 * device cannot push out everyone else's history. Usage counters are small
 * (one row per device-hour) and kept for usageMaxAgeDays.
 *
 * A batch is written in one transaction before write() resolves, and the
 * recorder is only answered after that: a crash loses nothing acknowledged.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { type Database, open, type RootDatabase } from 'lmdb';
import type { Logger } from 'pino';
import type { RecordBatch } from '../server/records/recorder.ts';
import type { DeviceLogKind, DeviceLogRecord, UsageDelta } from '../server/records/types.ts';

export const DAY_MS = 86_400_000;
export const HOUR_MS = 3_600_000;

export interface RetentionOptions {
  /** Log records older than this go. Default 30. */
  maxAgeDays?: number;
  /** Log records beyond this many bytes (approximate) go, oldest first. Default 1 GiB. */
  maxBytes?: number;
  /** One device keeps at most this many log records. Default 20000. */
  maxPerDevice?: number;
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
   * registry), so that reports by operator include every service.
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
  for (let i = 0; i < 6; i++) into[i] += c[i];
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

export class RecordsStore {
  readonly path: string;
  private readonly env: RootDatabase;
  private readonly logs: Database<DeviceLogRecord, LogKey>;
  private readonly logTime: Database<number, TimeKey>;
  private readonly usage: Database<Counters, [number, string, string, string]>;
  private readonly usageAgg: Database<Counters, [number, string, string]>;
  private readonly audit: Database<AuditEntry, [number, number]>;
  private readonly now: () => number;
  private readonly logger: Logger | undefined;
  private readonly maxAgeMs: number;
  private readonly maxBytes: number;
  private readonly maxPerDevice: number;
  private readonly operatorOf: ((imei: string) => string | undefined) | undefined;
  private readonly usageMaxAgeMs: number;
  private readonly perDevice = new Map<string, number>();
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
    this.usageMaxAgeMs = (options.usageMaxAgeDays ?? 400) * DAY_MS;
    this.operatorOf = options.operatorOf;
    this.env = open({ path, maxDbs: 8, noSync: false });
    this.logs = this.env.openDB({ name: 'logs' });
    this.logTime = this.env.openDB({ name: 'logTime' });
    this.usage = this.env.openDB({ name: 'usage' });
    this.usageAgg = this.env.openDB({ name: 'usageAgg' });
    this.audit = this.env.openDB({ name: 'audit' });
    // Counts and bytes are rebuilt from the index: cheaper than keeping them transactional.
    for (const { key, value } of this.logTime.getRange({ snapshot: true })) {
      this.totalBytes += typeof value === 'number' ? value : 0;
      this.perDevice.set(key[1], (this.perDevice.get(key[1]) ?? 0) + 1);
      if (key[2] > this.seq) this.seq = key[2];
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

  stats(): { logRecords: number; logBytes: number; devices: number } {
    let n = 0;
    for (const c of this.perDevice.values()) n += c;
    return { logRecords: n, logBytes: this.totalBytes, devices: this.perDevice.size };
  }

  /** Stores a batch in one transaction; resolves once it is committed. */
  async write(batch: RecordBatch): Promise<void> {
    if (this.closed) throw new Error('records store is closed');
    const logs = Array.isArray(batch.logs) ? batch.logs.filter(validLog) : [];
    const usage = Array.isArray(batch.usage) ? batch.usage.filter(validUsage) : [];
    if (logs.length === 0 && usage.length === 0) return;
    const p = this.env.transaction(() => {
      for (const r of logs) {
        const seq = ++this.seq;
        const size = sizeOf(r);
        this.logs.put([r.imei, r.at, seq], r);
        this.logTime.put([r.at, r.imei, seq], size);
        this.totalBytes += size;
        const count = (this.perDevice.get(r.imei) ?? 0) + 1;
        this.perDevice.set(r.imei, count);
        if (count > this.maxPerDevice) this.trimDevice(r.imei, count - Math.floor(this.maxPerDevice * 0.9));
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

  /** Inside a write transaction: drops a device's oldest `count` records. */
  private trimDevice(imei: string, count: number): void {
    let n = 0;
    for (const key of this.logs.getKeys({
      start: [imei],
      end: [imei, Number.MAX_SAFE_INTEGER],
      limit: count,
    })) {
      const [, at, seq] = key as LogKey;
      this.totalBytes -= this.logTime.get([at, imei, seq]) ?? 0;
      this.logs.remove(key as LogKey);
      this.logTime.remove([at, imei, seq]);
      n++;
    }
    this.perDevice.set(imei, (this.perDevice.get(imei) ?? n) - n);
  }

  /** Inside a write transaction: drops the oldest records until `bytes` are freed. */
  private trimOldest(bytes: number): void {
    let freed = 0;
    for (const { key, value } of this.logTime.getRange({})) {
      if (freed >= bytes) break;
      const [at, imei, seq] = key;
      this.logTime.remove(key);
      this.logs.remove([imei, at, seq]);
      freed += value;
      this.forget(imei);
    }
    this.totalBytes -= freed;
  }

  private forget(imei: string): void {
    const left = (this.perDevice.get(imei) ?? 1) - 1;
    if (left <= 0) this.perDevice.delete(imei);
    else this.perDevice.set(imei, left);
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
          this.logTime.remove(key);
          this.logs.remove([imei, at, seq]);
          this.totalBytes -= value;
          this.forget(imei);
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
    const cursor = parseCursor(o.cursor);
    const hi: [number, number] = cursor
      ? [cursor[0], cursor[1] - 1]
      : [o.to ?? Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER];
    const items: AuditEntry[] = [];
    let last: [number, number] | undefined;
    for (const { key, value } of this.audit.getRange({
      start: hi,
      end: [o.from ?? 0, 0],
      reverse: true,
      snapshot: true,
    })) {
      if (o.actor !== undefined && value.actor !== o.actor) continue;
      if (o.action !== undefined && !value.action.startsWith(o.action)) continue;
      if (o.target !== undefined && !value.target.includes(o.target)) continue;
      if (items.length === o.limit) return { items, next: last ? `${last[0]}.${last[1]}` : undefined };
      items.push(value);
      last = key;
    }
    return { items };
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

function parseCursor(cursor: string | undefined): [number, number] | undefined {
  if (cursor === undefined) return undefined;
  const m = /^(\d{1,16})\.(\d{1,16})$/.exec(cursor);
  return m ? [Number(m[1]), Number(m[2])] : undefined;
}

const SERVICES = new Set(['session', 'mail', 'im']);

function validLog(r: unknown): r is DeviceLogRecord {
  const x = r as DeviceLogRecord;
  return (
    x !== null &&
    typeof x === 'object' &&
    typeof x.imei === 'string' &&
    x.imei.length > 0 &&
    x.imei.length <= 32 &&
    typeof x.at === 'number' &&
    Number.isFinite(x.at) &&
    typeof x.kind === 'string' &&
    typeof x.node === 'string'
  );
}

function validUsage(d: unknown): d is UsageDelta {
  const x = d as UsageDelta;
  return (
    x !== null &&
    typeof x === 'object' &&
    typeof x.imei === 'string' &&
    x.imei.length <= 32 &&
    typeof x.at === 'number' &&
    Number.isFinite(x.at) &&
    SERVICES.has(x.service) &&
    (x.operator === undefined || typeof x.operator === 'string')
  );
}

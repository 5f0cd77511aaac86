/**
 * Alarm history: every raise and clear, kept durably. Two backends behind
 * this interface (one conformance suite runs on both,
 * testing/alarm-history-suite.ts): lmdb on a single node (lmdb-history.ts),
 * a JetStream stream with replicas in cluster mode (jetstream-history.ts),
 * so that every admin node shows the same history and a restarted one shows
 * the past. A memory one stands in when neither is there (a NATS server
 * without JetStream): alarms still work, the history ends with the process.
 *
 * append() is conditional on the alarm's newest record: several nodes see the
 * same node leave, and only the first one's raise is written (and delivered).
 */
import { EventEmitter } from 'node:events';
import type { AlarmRecord } from './alarm.ts';

export interface StoredAlarm {
  /** Position in the history, increasing. */
  seq: number;
  record: AlarmRecord;
}

export interface AlarmHistory {
  readonly backend: 'memory' | 'lmdb' | 'jetstream';
  /** The newest record of this alarm, or undefined when it never was raised (or aged out). */
  latest(id: string): Promise<StoredAlarm | undefined>;
  /**
   * Appends when the newest record of `record.id` still has `expectedSeq`
   * (0: no record yet); undefined when another writer came first.
   */
  append(record: AlarmRecord, expectedSeq: number): Promise<StoredAlarm | undefined>;
  /** Newest first: at most `limit` records, those before `beforeSeq` when given. */
  list(options: { limit: number; beforeSeq?: number }): Promise<StoredAlarm[]>;
  /** Every record appended from now on, by any writer. */
  watch(listener: (stored: StoredAlarm) => void): () => void;
  close(): Promise<void>;
}

/** Retention of the history (config alarms.history). */
export interface HistoryRetention {
  /** Records kept; the oldest go first. */
  maxRecords: number;
}

export const DEFAULT_RETENTION: HistoryRetention = { maxRecords: 10_000 };

export class MemoryAlarmHistory implements AlarmHistory {
  readonly backend = 'memory' as const;
  private readonly records: StoredAlarm[] = [];
  private readonly newest = new Map<string, StoredAlarm>();
  private readonly feed = new EventEmitter();
  private seq = 0;

  constructor(private readonly retention: HistoryRetention = DEFAULT_RETENTION) {
    this.feed.setMaxListeners(0);
  }

  async latest(id: string): Promise<StoredAlarm | undefined> {
    return this.newest.get(id);
  }

  async append(record: AlarmRecord, expectedSeq: number): Promise<StoredAlarm | undefined> {
    if ((this.newest.get(record.id)?.seq ?? 0) !== expectedSeq) return undefined;
    const stored = { seq: ++this.seq, record };
    this.records.push(stored);
    this.newest.set(record.id, stored);
    while (this.records.length > this.retention.maxRecords) {
      const gone = this.records.shift();
      if (gone && this.newest.get(gone.record.id) === gone) this.newest.delete(gone.record.id);
    }
    this.feed.emit('record', stored);
    return stored;
  }

  async list(options: { limit: number; beforeSeq?: number }): Promise<StoredAlarm[]> {
    const before = options.beforeSeq ?? Number.POSITIVE_INFINITY;
    const out: StoredAlarm[] = [];
    for (let i = this.records.length - 1; i >= 0 && out.length < options.limit; i--) {
      const r = this.records[i];
      if (r && r.seq < before) out.push(r);
    }
    return out;
  }

  watch(listener: (stored: StoredAlarm) => void): () => void {
    this.feed.on('record', listener);
    return () => this.feed.off('record', listener);
  }

  async close(): Promise<void> {
    this.feed.removeAllListeners();
  }
}

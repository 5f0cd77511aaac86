/**
 * Alarm history of a single node: lmdb at `<data>/alarms` (its own
 * environment, like the records store's), written before append() resolves,
 * so a kill -9 keeps what was raised. Records are stored as written
 * (versioned, alarm.ts) and read through readAlarmRecord.
 */
import { EventEmitter } from 'node:events';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { type Database, open, type RootDatabase } from 'lmdb';
import { readAlarmRecord } from './alarm.ts';
import type { AlarmRecord } from './alarm.ts';
import { type AlarmHistory, DEFAULT_RETENTION, type HistoryRetention, type StoredAlarm } from './history.ts';

export class LmdbAlarmHistory implements AlarmHistory {
  readonly backend = 'lmdb' as const;
  private readonly env: RootDatabase;
  private readonly history: Database<unknown, number>;
  private readonly newest: Database<number, string>;
  private readonly feed = new EventEmitter();
  private seq = 0;
  private count = 0;
  private closed = false;

  private constructor(
    path: string,
    private readonly retention: HistoryRetention,
  ) {
    this.feed.setMaxListeners(0);
    this.env = open({ path, maxDbs: 4, noSync: false });
    this.history = this.env.openDB({ name: 'history' });
    this.newest = this.env.openDB({ name: 'newest' });
    for (const key of this.history.getKeys({ snapshot: true })) {
      this.count++;
      if (key > this.seq) this.seq = key;
    }
  }

  static open(dataDir: string, retention: HistoryRetention = DEFAULT_RETENTION): LmdbAlarmHistory {
    const path = join(dataDir, 'alarms');
    mkdirSync(path, { recursive: true, mode: 0o700 });
    return new LmdbAlarmHistory(path, retention);
  }

  private read(seq: number): StoredAlarm | undefined {
    const record = readAlarmRecord(this.history.get(seq));
    return record ? { seq, record } : undefined;
  }

  async latest(id: string): Promise<StoredAlarm | undefined> {
    const seq = this.newest.get(id);
    return seq === undefined ? undefined : this.read(seq);
  }

  async append(record: AlarmRecord, expectedSeq: number): Promise<StoredAlarm | undefined> {
    if (this.closed) throw new Error('alarm history is closed');
    const stored = await this.env.transaction((): StoredAlarm | undefined => {
      if ((this.newest.get(record.id) ?? 0) !== expectedSeq) return undefined;
      const seq = ++this.seq;
      this.history.put(seq, record);
      this.newest.put(record.id, seq);
      this.count++;
      // Oldest first; an alarm whose newest record goes is forgotten (cleared long ago).
      const excess = this.count - this.retention.maxRecords;
      if (excess <= 0) return { seq, record };
      for (const key of [...this.history.getKeys({ limit: excess })]) {
        const old = readAlarmRecord(this.history.get(key));
        this.history.remove(key);
        this.count--;
        if (old && this.newest.get(old.id) === key) this.newest.remove(old.id);
      }
      return { seq, record };
    });
    if (stored) this.feed.emit('record', stored);
    return stored;
  }

  async list(options: { limit: number; beforeSeq?: number }): Promise<StoredAlarm[]> {
    const out: StoredAlarm[] = [];
    const range = this.history.getRange({
      reverse: true,
      ...(options.beforeSeq === undefined ? {} : { start: options.beforeSeq - 1 }),
      snapshot: true,
    });
    for (const { key, value } of range) {
      if (out.length >= options.limit) break;
      const record = readAlarmRecord(value);
      if (record) out.push({ seq: key, record });
    }
    return out;
  }

  watch(listener: (stored: StoredAlarm) => void): () => void {
    this.feed.on('record', listener);
    return () => this.feed.off('record', listener);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.feed.removeAllListeners();
    await this.env.close();
  }
}

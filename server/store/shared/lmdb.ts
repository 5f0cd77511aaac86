/**
 * The shared-state interface on one lmdb environment: the embedded
 * single-node store. Each table is one database of `{ r: revision, v: value }`
 * under its key; revisions count per table (in a `meta` database) inside the
 * same write transaction, so compare-and-set is exact even with several
 * processes on one environment (a gateway and the `mmgw` CLI).
 *
 * Watchers hear the changes made through this process's SharedState only;
 * reads always see the environment's latest commit, including other
 * processes' writes.
 */
import { mkdirSync } from 'node:fs';
import { type Database, open, type RootDatabase } from 'lmdb';
import {
  assertKey,
  assertTableName,
  conflict,
  type ListOptions,
  type SharedChange,
  type SharedEntry,
  type SharedState,
  type SharedTable,
  type TableOptions,
  take,
} from './table.ts';

type RawListener = (key: string, revision: number, raw?: unknown) => void;

interface Stored {
  r: number;
  v: unknown;
}

export class LmdbSharedState implements SharedState {
  readonly kind = 'lmdb' as const;
  private readonly env: RootDatabase;
  private readonly meta: Database<number, string>;
  /** Per table name: every open table's raw listeners (each decodes with its own reader). */
  private readonly hubs = new Map<string, Set<RawListener>>();

  constructor(readonly path: string) {
    mkdirSync(path, { recursive: true });
    this.env = open({ path, maxDbs: 64 });
    this.meta = this.env.openDB<number, string>({ name: 'meta' });
  }

  async table<T>(name: string, options: TableOptions<T>): Promise<SharedTable<T>> {
    assertTableName(name);
    const db = this.env.openDB<Stored, string>({ name: `t:${name}` });
    let hub = this.hubs.get(name);
    if (!hub) {
      hub = new Set();
      this.hubs.set(name, hub);
    }
    return new LmdbTable<T>(name, db, this.meta, hub, options);
  }

  async close(): Promise<void> {
    this.hubs.clear();
    await this.env.close();
  }
}

class LmdbTable<T> implements SharedTable<T> {
  constructor(
    readonly name: string,
    private readonly db: Database<Stored, string>,
    private readonly meta: Database<number, string>,
    private readonly hub: Set<RawListener>,
    private readonly options: TableOptions<T>,
  ) {}

  get(key: string): SharedEntry<T> | undefined {
    const stored = this.db.get(key);
    return stored === undefined ? undefined : this.decode(key, stored);
  }

  list(options: ListOptions = {}): SharedEntry<T>[] {
    return take(this.entries(options), options.limit);
  }

  *entries(options: Omit<ListOptions, 'limit'> = {}): Generator<SharedEntry<T>> {
    const prefix = options.prefix ?? '';
    const start = options.after !== undefined && options.after > prefix ? options.after : prefix;
    const range = this.db.getRange({
      ...(start === '' ? {} : { start }),
      ...(prefix === '' ? {} : { end: `${prefix}\uffff` }),
      snapshot: true,
    });
    for (const { key, value } of range) {
      if (options.after !== undefined && key <= options.after) continue;
      if (!key.startsWith(prefix)) return;
      const entry = this.decode(key, value);
      if (entry) yield entry;
    }
  }

  size(): number {
    return (this.db.getStats() as { entryCount: number }).entryCount;
  }

  async create(key: string, value: T): Promise<SharedEntry<T>> {
    assertKey(key);
    const revision = await this.db.transaction(() => {
      if (this.db.doesExist(key)) return undefined;
      const r = this.nextRevision();
      this.db.put(key, { r, v: value });
      return r;
    });
    if (revision === undefined) throw conflict(this.name, key);
    return this.changed(key, value, revision);
  }

  async update(key: string, value: T, revision: number): Promise<SharedEntry<T>> {
    assertKey(key);
    const next = await this.db.transaction(() => {
      const stored = this.db.get(key);
      if (stored === undefined || stored.r !== revision) return undefined;
      const r = this.nextRevision();
      this.db.put(key, { r, v: value });
      return r;
    });
    if (next === undefined) throw conflict(this.name, key);
    return this.changed(key, value, next);
  }

  async remove(key: string, revision?: number): Promise<boolean> {
    const outcome = await this.db.transaction(() => {
      const stored = this.db.get(key);
      if (stored === undefined) return 'absent' as const;
      if (revision !== undefined && stored.r !== revision) return 'stale' as const;
      this.db.remove(key);
      return this.nextRevision();
    });
    if (outcome === 'stale') throw conflict(this.name, key);
    if (outcome === 'absent') return false;
    for (const listener of this.hub) listener(key, outcome);
    return true;
  }

  /** Every process reads the one lmdb file: nothing to catch up with. */
  caughtUp(): Promise<void> {
    return Promise.resolve();
  }

  watch(listener: (change: SharedChange<T>) => void): () => void {
    const raw: RawListener = (key, revision, value) => {
      if (value === undefined) return listener({ key, revision });
      const entry = this.decode(key, { r: revision, v: value });
      if (entry) listener(entry);
    };
    this.hub.add(raw);
    return () => this.hub.delete(raw);
  }

  /** Inside a write transaction. */
  private nextRevision(): number {
    const r = (this.meta.get(`rev:${this.name}`) ?? 0) + 1;
    this.meta.put(`rev:${this.name}`, r);
    return r;
  }

  private decode(key: string, stored: Stored): SharedEntry<T> | undefined {
    try {
      return { key, value: this.options.read(stored.v), revision: stored.r };
    } catch (err) {
      this.options.onBadRecord?.(key, err);
      return undefined;
    }
  }

  private changed(key: string, value: T, revision: number): SharedEntry<T> {
    // Listeners get the stored form: each decodes it with its own table's reader.
    for (const listener of this.hub) listener(key, revision, value);
    return { key, value, revision };
  }
}

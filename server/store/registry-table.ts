/**
 * One table of the registry (devices, admin users, reference data,
 * provisioned accounts) behind one small interface with two backends: a
 * database of the node's lmdb registry environment (the single-node default,
 * its layout unchanged) and a shared-state table (shared/: JetStream KV in a
 * cluster, so that every admin node reads and writes the same records).
 *
 * Reads are synchronous and local on both. A write is a read-check-write of
 * ONE key (`change`): on lmdb inside one write transaction, on the shared
 * state a compare-and-set at the revision read, decided again on conflict.
 * Nothing spans keys on the shared state, so the registry keeps its indexes
 * derivable from one table (IMEI uniqueness is the devices table's key, the
 * IMSI and operator indexes are computed from the devices read) and writes
 * what follows from a change (a removed device's accounts) as separate,
 * idempotent steps.
 */
import type { Database } from 'lmdb';
import type { DeviceIndexes } from './device-writes.ts';
import { modify, type SharedTable } from './shared/table.ts';

export interface TableRow<V> {
  key: string;
  value: V;
}

/** What a change decided: the value to write (or remove the key), and the answer for the caller. */
export interface Decision<V, R> {
  put?: V;
  remove?: boolean;
  result: R;
}

export interface RegistryTable<V> {
  get(key: string): V | undefined;
  has(key: string): boolean;
  /** Rows in key order; `prefix` limits them, `after` starts after that key. */
  rows(options?: { prefix?: string; after?: string }): Iterable<TableRow<V>>;
  count(): number;
  /**
   * A read-check-write of one key. `decide` sees the current value and may
   * run more than once (the shared state decides again after a conflict), so
   * it has no side effects. `committed` runs once, with the decision that was
   * stored and the value it replaced: on lmdb inside the same write
   * transaction (its writes to the node's own databases commit with the
   * change), on the shared state right after the write was acknowledged.
   */
  change<R>(
    key: string,
    decide: (current: V | undefined) => Decision<V, R>,
    committed?: (decision: Decision<V, R>, before: V | undefined) => void,
  ): Promise<R>;
  /**
   * `change` of many keys with no answer and nothing after: on lmdb in ONE
   * transaction, on the shared state a few keys in flight at a time. A key
   * that fails is left as it was; the others are still written.
   */
  changeEach(
    keys: Iterable<string>,
    decide: (key: string, current: V | undefined) => V | undefined,
  ): Promise<void>;
  /** Hears changes by any writer the backend sees (every node, for the shared state); lmdb: none. */
  /** Changes of any node (shared state), with the new and, where known, the former value. */
  watch(listener: (key: string, value?: V, previous?: V) => void): () => void;
}

/** How many keys of a changeEach are in flight at once on the shared state. */
const IN_FLIGHT = 32;

/** How a registry key maps to an lmdb key: devices and users by string, the others by [a, b] from `a/b`. */
export type LmdbKeyShape = 'string' | 'pair';

/** The lmdb key of a 'pair' table's `a/b`: [a, b] (split at the first slash). */
export function pairKey(key: string): [string, string] {
  const at = key.indexOf('/');
  return [key.slice(0, at), key.slice(at + 1)];
}

export class LmdbRegistryTable<V> implements RegistryTable<V> {
  constructor(
    private readonly db: Database<unknown, string | string[]>,
    private readonly shape: LmdbKeyShape,
    private readonly read: (raw: unknown) => V,
  ) {}

  private lmdbKey(key: string): string | string[] {
    return this.shape === 'string' ? key : pairKey(key);
  }

  get(key: string): V | undefined {
    const raw = this.db.get(this.lmdbKey(key));
    return raw === undefined ? undefined : this.read(raw);
  }

  has(key: string): boolean {
    return this.db.doesExist(this.lmdbKey(key));
  }

  *rows(options: { prefix?: string; after?: string } = {}): Generator<TableRow<V>> {
    const prefix = options.prefix ?? '';
    let range: { start?: string | string[]; end?: string | string[] } = {};
    if (this.shape === 'string') {
      const start = options.after !== undefined && options.after > prefix ? options.after : prefix;
      range = { ...(start === '' ? {} : { start }), ...(prefix === '' ? {} : { end: `${prefix}\uffff` }) };
    } else if (/^[^/]+\/$/.test(prefix)) {
      const a = prefix.slice(0, -1);
      range = { start: [a], end: [a, '\uffff'] };
    }
    for (const { key, value } of this.db.getRange({ ...range, snapshot: true })) {
      const k = Array.isArray(key) ? `${key[0]}/${key[1]}` : String(key);
      if (!k.startsWith(prefix)) continue;
      if (options.after !== undefined && k <= options.after) continue;
      yield { key: k, value: this.read(value) };
    }
  }

  count(): number {
    return (this.db.getStats() as { entryCount: number }).entryCount;
  }

  change<R>(
    key: string,
    decide: (current: V | undefined) => Decision<V, R>,
    committed?: (decision: Decision<V, R>, before: V | undefined) => void,
  ): Promise<R> {
    const k = this.lmdbKey(key);
    return this.db.transaction(() => {
      const raw = this.db.get(k);
      const before = raw === undefined ? undefined : this.read(raw);
      const decision = decide(before);
      if (decision.remove) this.db.remove(k);
      else if (decision.put !== undefined) this.db.put(k, decision.put);
      committed?.(decision, before);
      return decision.result;
    });
  }

  async changeEach(
    keys: Iterable<string>,
    decide: (key: string, current: V | undefined) => V | undefined,
  ): Promise<void> {
    await this.db.transaction(() => {
      for (const key of keys) {
        const k = this.lmdbKey(key);
        const raw = this.db.get(k);
        const next = decide(key, raw === undefined ? undefined : this.read(raw));
        if (next !== undefined) this.db.put(k, next);
      }
    });
  }

  watch(): () => void {
    return () => {};
  }
}

export class SharedRegistryTable<V> implements RegistryTable<V> {
  constructor(private readonly table: SharedTable<V>) {}

  get(key: string): V | undefined {
    return this.table.get(key)?.value;
  }

  has(key: string): boolean {
    return this.table.get(key) !== undefined;
  }

  rows(options: { prefix?: string; after?: string } = {}): Iterable<TableRow<V>> {
    // The shared entries are rows already (their revision rides along, unread).
    return this.table.entries(options);
  }

  count(): number {
    return this.table.size();
  }

  async change<R>(
    key: string,
    decide: (current: V | undefined) => Decision<V, R>,
    committed?: (decision: Decision<V, R>, before: V | undefined) => void,
  ): Promise<R> {
    // modify() decides again (after a random pause) whenever another writer won the round.
    let decided: { decision: Decision<V, R>; before: V | undefined } | undefined;
    await modify(this.table, key, (current) => {
      const decision = decide(current?.value);
      decided = { decision, before: current?.value };
      return decision.remove ? null : decision.put;
    });
    const { decision, before } = decided as { decision: Decision<V, R>; before: V | undefined };
    committed?.(decision, before);
    return decision.result;
  }

  async changeEach(
    keys: Iterable<string>,
    decide: (key: string, current: V | undefined) => V | undefined,
  ): Promise<void> {
    const queue = [...keys];
    const worker = async (): Promise<void> => {
      for (let key = queue.shift(); key !== undefined; key = queue.shift()) {
        const k = key;
        await this.change(k, (current) => {
          const put = decide(k, current);
          return put === undefined ? { result: undefined } : { put, result: undefined };
        }).catch(() => undefined);
      }
    };
    await Promise.all(Array.from({ length: Math.min(IN_FLIGHT, queue.length) }, worker));
  }

  watch(listener: (key: string, value?: V, previous?: V) => void): () => void {
    return this.table.watch((change) => listener(change.key, change.value, change.previous));
  }
}

/** lmdb: the IMSI index and a removed device's accounts change in the device's transaction. */
export function lmdbDeviceIndexes(
  imsis: Database<boolean, string>,
  accounts: Database<unknown, string[]>,
): DeviceIndexes {
  return {
    imsiMoved(imei, before, after) {
      if (before) imsis.remove(`${before}:${imei}`);
      if (after) imsis.put(`${after}:${imei}`, true);
    },
    removedInChange(imei) {
      for (const key of accounts.getKeys({ start: [imei], end: [imei, '\uffff'] })) accounts.remove(key);
    },
    removedAfter: async () => {},
  };
}

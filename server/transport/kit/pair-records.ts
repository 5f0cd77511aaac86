/**
 * Small versioned records in a named sub-database of the node's
 * TransportStorage, keyed by two strings [owner, id]: the sent marks of
 * mail.send ([account, clientId]), the sent records of im.send (the same),
 * the INBOX watch marks ([device, account]). One owner's records are one key
 * range: listed and removed together.
 *
 * Each record is stored with a version `v`; the codec reads every version
 * this release knows into the current shape, and nothing for one it cannot
 * read (damaged, or written by a newer release: pruning keeps those for it).
 *
 * In cluster mode the records move into a table of the cluster's shared state
 * once it opens (share()), so that the transport that takes a dead node's
 * devices over finds their marks and sent records (issue #12): the node's own
 * records are copied in (a shared one written later wins) and dropped from
 * its lmdb, and every read and write goes to the table from then on. One key
 * per pair (`owner`, U+0001, `id`): the table lists an owner's by prefix.
 */
import type { Database } from 'lmdb';
import { modify, type SharedState, type SharedTable } from '../../store/shared/table.ts';
import type { TransportStorage } from './transport-storage.ts';

export interface PairRecordCodec<T> {
  /** The version `put` writes. */
  version: number;
  /** A stored value of any known version; undefined when unreadable. */
  read(raw: unknown): T | undefined;
  /** When the record was last written (Date.now()), for prune. */
  at(record: T): number;
}

type PairKey = [owner: string, id: string];

/** A stored value as the shared table keeps it: with its version, read by the codec on the way out. */
type Raw = { v?: unknown };

const SEPARATOR = '\u0001';
const sharedKey = (owner: string, id: string) => `${owner}${SEPARATOR}${id}`;

export class PairRecords<T extends object> {
  readonly #db: Database<unknown, PairKey>;
  readonly #codec: PairRecordCodec<T>;
  readonly #name: string;
  #shared: SharedTable<Raw> | undefined;
  #moving: Promise<void> | undefined;
  /** Local writes under way: a move into the shared table waits for them. */
  readonly #pending = new Set<Promise<unknown>>();

  constructor(storage: TransportStorage, name: string, codec: PairRecordCodec<T>) {
    this.#db = storage.database<unknown, PairKey>(name);
    this.#codec = codec;
    this.#name = name;
  }

  /** The shared table's name: the sub-database's, dots as underscores (`mail.watch` → `mail_watch`). */
  get tableName(): string {
    return this.#name.replaceAll('.', '_');
  }

  /** Whether the records are the cluster's (else this node's own). */
  get shared(): boolean {
    return this.#shared !== undefined;
  }

  /**
   * Moves the node's records into the cluster's table `tableName` and serves
   * from it. Idempotent; a failed move leaves the lmdb in charge and may be
   * tried again.
   */
  share(state: SharedState): Promise<void> {
    this.#moving ??= (async () => {
      const table = await state.table<Raw>(this.tableName, {
        read: (raw) => {
          if (this.#codec.read(raw) === undefined) throw new Error(`unreadable ${this.#name} record`);
          return raw as Raw;
        },
      });
      await Promise.allSettled([...this.#pending]);
      for (const { key, value } of this.#db.getRange({})) {
        const record = this.#codec.read(value);
        if (record === undefined) continue;
        const at = this.#codec.at(record);
        await modify(table, sharedKey(key[0], key[1]), (current) => {
          const theirs = current && this.#codec.read(current.value);
          return theirs && this.#codec.at(theirs) >= at ? undefined : (value as Raw);
        });
      }
      await this.#db.clearAsync();
      this.#shared = table;
    })().catch((err: unknown) => {
      this.#moving = undefined;
      throw err;
    });
    return this.#moving;
  }

  /** Resolves once the shared table's copy holds every write acknowledged so far (SharedTable.caughtUp). */
  async caughtUp(): Promise<void> {
    if (this.#moving) await this.#moving.catch(() => {});
    await this.#shared?.caughtUp();
  }

  get(owner: string, id: string): T | undefined {
    if (this.#shared) return this.#codec.read(this.#shared.get(sharedKey(owner, id))?.value);
    return this.#codec.read(this.#db.get([owner, id]));
  }

  /** The owner's readable records. */
  list(owner: string): { id: string; record: T }[] {
    const out: { id: string; record: T }[] = [];
    if (this.#shared) {
      const prefix = `${owner}${SEPARATOR}`;
      for (const { key, value } of this.#shared.entries({ prefix })) {
        const record = this.#codec.read(value);
        if (record) out.push({ id: key.slice(prefix.length), record });
      }
      return out;
    }
    for (const { key, value } of this.#db.getRange({ start: [owner], end: [owner, '\uffff'] })) {
      const record = this.#codec.read(value);
      if (record && key[0] === owner) out.push({ id: key[1], record });
    }
    return out;
  }

  /** Resolves once committed to disk (or to the cluster): after that, a crash cannot lose it. */
  async put(owner: string, id: string, record: T): Promise<void> {
    const value = { v: this.#codec.version, ...record };
    await this.#write(
      (table) => modify(table, sharedKey(owner, id), () => value),
      () => this.#db.put([owner, id], value),
    );
  }

  /**
   * Rewrites the record with what `change` makes of it; nothing when it
   * answers undefined, or when there is no readable record (a change never
   * brings back a record removed meanwhile). Read and write are one step:
   * a transaction here, a compare-and-set in the shared table.
   */
  async update(owner: string, id: string, change: (current: T) => T | undefined): Promise<void> {
    const next = (raw: unknown) => {
      const record = this.#codec.read(raw);
      const changed = record && change(record);
      return changed && { v: this.#codec.version, ...changed };
    };
    await this.#write(
      (table) => modify(table, sharedKey(owner, id), (current) => current && next(current.value)),
      () =>
        this.#db.transaction(() => {
          const value = next(this.#db.get([owner, id]));
          if (value) this.#db.putSync([owner, id], value);
        }),
    );
  }

  async remove(owner: string, id: string): Promise<void> {
    await this.#write(
      (table) => modify(table, sharedKey(owner, id), () => null),
      () => this.#db.remove([owner, id]),
    );
  }

  async removeOwner(owner: string): Promise<void> {
    if (this.#moving) await this.#moving.catch(() => {});
    if (this.#shared) {
      for (const { id } of this.list(owner)) await this.remove(owner, id);
      return;
    }
    await this.#db.transaction(() => {
      for (const key of this.#db.getKeys({ start: [owner], end: [owner, '\uffff'] })) {
        if (key[0] === owner) this.#db.removeSync(key);
      }
    });
  }

  /**
   * Drops records written before `before`, and damaged ones; returns how many.
   * Shared records another node changed meanwhile stay (their revision moved),
   * and of several nodes pruning one table, each record is dropped by one:
   * `onDropped` hears of each record this call dropped, once.
   */
  async prune(
    before: number,
    onDropped?: (owner: string, id: string, record: T | undefined) => void,
  ): Promise<number> {
    const dropped: [owner: string, id: string, record: T | undefined][] = [];
    if (this.#moving) await this.#moving.catch(() => {});
    const table = this.#shared;
    if (table) {
      for (const { key, value, revision } of [...table.entries()]) {
        const record = this.#codec.read(value);
        if (!record || this.#codec.at(record) >= before) continue;
        const [owner = '', id = ''] = key.split(SEPARATOR);
        if (await table.remove(key, revision).catch(() => false)) dropped.push([owner, id, record]);
      }
    } else {
      await this.#db.transaction(() => {
        for (const { key, value } of this.#db.getRange({})) {
          const record = this.#codec.read(value);
          if (record ? this.#codec.at(record) >= before : this.#isNewer(value)) continue;
          this.#db.removeSync(key);
          dropped.push([key[0], key[1], record]);
        }
      });
    }
    for (const [owner, id, record] of dropped) onDropped?.(owner, id, record);
    return dropped.length;
  }

  async #write(shared: (table: SharedTable<Raw>) => Promise<unknown>, local: () => Promise<unknown>) {
    if (this.#moving) await this.#moving.catch(() => {});
    if (this.#shared) return shared(this.#shared);
    const done = local();
    this.#pending.add(done);
    try {
      await done;
    } finally {
      this.#pending.delete(done);
    }
  }

  #isNewer(raw: unknown): boolean {
    const v = (raw as { v?: unknown } | null)?.v;
    return typeof v === 'number' && v > this.#codec.version;
  }
}

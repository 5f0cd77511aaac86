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
 */
import type { Database } from 'lmdb';
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

export class PairRecords<T extends object> {
  readonly #db: Database<unknown, PairKey>;
  readonly #codec: PairRecordCodec<T>;

  constructor(storage: TransportStorage, name: string, codec: PairRecordCodec<T>) {
    this.#db = storage.database<unknown, PairKey>(name);
    this.#codec = codec;
  }

  get(owner: string, id: string): T | undefined {
    return this.#codec.read(this.#db.get([owner, id]));
  }

  /** The owner's readable records. */
  list(owner: string): { id: string; record: T }[] {
    const out: { id: string; record: T }[] = [];
    for (const { key, value } of this.#db.getRange({ start: [owner], end: [owner, '\uffff'] })) {
      const record = this.#codec.read(value);
      if (record && key[0] === owner) out.push({ id: key[1], record });
    }
    return out;
  }

  /** Resolves once committed to disk: after that, a crash cannot lose it. */
  async put(owner: string, id: string, record: T): Promise<void> {
    await this.#db.put([owner, id], { v: this.#codec.version, ...record });
  }

  async remove(owner: string, id: string): Promise<void> {
    await this.#db.remove([owner, id]);
  }

  async removeOwner(owner: string): Promise<void> {
    await this.#db.transaction(() => {
      for (const key of this.#db.getKeys({ start: [owner], end: [owner, '\uffff'] })) {
        if (key[0] === owner) this.#db.removeSync(key);
      }
    });
  }

  /** Drops records written before `before`, and damaged ones; returns how many. */
  async prune(before: number): Promise<number> {
    let dropped = 0;
    await this.#db.transaction(() => {
      for (const { key, value } of this.#db.getRange({})) {
        const record = this.#codec.read(value);
        if (record ? this.#codec.at(record) >= before : this.#isNewer(value)) continue;
        this.#db.removeSync(key);
        dropped++;
      }
    });
    return dropped;
  }

  #isNewer(raw: unknown): boolean {
    const v = (raw as { v?: unknown } | null)?.v;
    return typeof v === 'number' && v > this.#codec.version;
  }
}

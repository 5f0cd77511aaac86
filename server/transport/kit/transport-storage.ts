/**
 * The transport role's lmdb environment: one per node, in `<dataDir>/transport`
 * (data.mdb, lock.mdb). Each service keeps its records in named sub-databases
 * of it (`mail.accounts`, `im.accounts`): one file to back up, one lock, and a
 * write of one service never waits on another environment's sync.
 *
 * The node opens it once and hands it to its services; a service opened
 * without one (a test) opens it itself. Opening the same directory twice in
 * one process shares the environment (lmdb keeps one per path).
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { type Database, type Key, open, type RootDatabase } from 'lmdb';

/** Sub-databases a transport node may hold; every service takes one or two. */
const MAX_DATABASES = 16;

export class TransportStorage {
  /** `<dataDir>/transport`: the environment's files, and older releases' files beside them. */
  readonly dir: string;
  readonly #env: RootDatabase;
  #closed = false;

  private constructor(dir: string, env: RootDatabase) {
    this.dir = dir;
    this.#env = env;
  }

  static open(dataDir: string): TransportStorage {
    const dir = join(dataDir, 'transport');
    mkdirSync(dir, { recursive: true });
    return new TransportStorage(dir, open({ path: dir, maxDbs: MAX_DATABASES }));
  }

  /** A named sub-database with msgpack values; the same name always holds the same records. */
  database<V, K extends Key = Key>(name: string): Database<V, K> {
    return this.#env.openDB<V, K>({ name, encoding: 'msgpack' });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#env.close();
  }
}

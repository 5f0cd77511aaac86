/**
 * A transport's account records in cluster mode: the node's lmdb until the
 * cluster's shared table (JetStream KV) is open, the shared table from then
 * on. Opening the table moves every record the node holds in its lmdb into it
 * (an upgrade from per-node accounts, or accounts added while the table was
 * not reachable yet): a record the table already has for that account wins,
 * so a copy repeated after a crash changes nothing. Writes wait while the
 * move runs, so none lands in the lmdb after it was emptied.
 *
 * A bus without JetStream never opens the table: the node keeps its own
 * accounts in lmdb, as a single node does.
 */
import type { Logger } from 'pino';
import {
  accountTableName,
  type AccountRecords,
  type DeviceAccountsV1,
  LmdbAccountRecords,
  readDeviceAccounts,
  SharedAccountRecords,
  type StoredAccount,
} from './account-store.ts';
import type { SharedState } from '../../store/shared/table.ts';
import type { ServiceName } from '../../store/device-profile.ts';
import type { TransportStorage } from './transport-storage.ts';

export class HandoverAccountRecords<Stored extends StoredAccount> implements AccountRecords<Stored> {
  readonly #local: LmdbAccountRecords<Stored>;
  #shared: SharedAccountRecords<Stored> | undefined;
  #moving: Promise<void> | undefined;
  readonly #pending = new Set<Promise<unknown>>();

  constructor(storage: TransportStorage, service: ServiceName) {
    this.#local = new LmdbAccountRecords<Stored>(storage, service);
  }

  /** Whether the records are the cluster's (else this node's own). */
  get shared(): boolean {
    return this.#shared !== undefined;
  }

  /** Moves the node's records into the shared table, then serves from it. */
  adopt(shared: SharedAccountRecords<Stored>): Promise<void> {
    this.#moving ??= (async () => {
      // Local writes that began before the move are committed first, so none is left behind.
      await Promise.allSettled([...this.#pending]);
      for (const [deviceId, id] of [...this.#local.keys()]) {
        const record = this.#local.get(deviceId, id);
        if (record !== undefined) await shared.put(deviceId, id, (previous) => previous ?? record);
        await this.#local.remove(deviceId, id);
      }
      this.#shared = shared;
    })().catch((err: unknown) => {
      // The lmdb stays in charge; the next adopt tries again.
      this.#moving = undefined;
      throw err;
    });
    return this.#moving;
  }

  get #reads(): AccountRecords<Stored> {
    return this.#shared ?? this.#local;
  }

  get(deviceId: string, accountId: string): Stored | undefined {
    return this.#reads.get(deviceId, accountId);
  }

  has(deviceId: string, accountId: string): boolean {
    return this.#reads.has(deviceId, accountId);
  }

  count(deviceId: string): number {
    return this.#reads.count(deviceId);
  }

  list(deviceId: string): Stored[] {
    return this.#reads.list(deviceId);
  }

  keys(): Iterable<[string, string]> {
    return this.#reads.keys();
  }

  put(
    deviceId: string,
    id: string,
    make: (previous: Stored | undefined) => Stored,
    max?: number,
  ): Promise<Stored> {
    return this.#write((records) => records.put(deviceId, id, make, max));
  }

  remove(deviceId: string, accountId: string): Promise<boolean> {
    return this.#write((records) => records.remove(deviceId, accountId));
  }

  async #write<T>(write: (records: AccountRecords<Stored>) => Promise<T>): Promise<T> {
    if (this.#moving) await this.#moving.catch(() => {});
    if (this.#shared) return write(this.#shared);
    if (this.#moving) return this.#write(write);
    const done = write(this.#local);
    this.#pending.add(done);
    try {
      return await done;
    } finally {
      this.#pending.delete(done);
    }
  }
}

/** Opens a service's shared account table on the cluster state and moves the node's records into it. */
export async function adoptSharedAccounts<Stored extends StoredAccount>(
  state: SharedState,
  service: ServiceName,
  records: HandoverAccountRecords<Stored>,
  logger?: Logger,
): Promise<void> {
  const table = await state.table<DeviceAccountsV1>(accountTableName(service), {
    read: readDeviceAccounts,
    onBadRecord: (key, err) =>
      logger?.warn({ err, deviceId: key, service }, 'unreadable shared account record'),
  });
  await records.adopt(new SharedAccountRecords<Stored>(table));
}

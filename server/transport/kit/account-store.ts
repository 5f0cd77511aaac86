/**
 * The accounts of the devices pinned to this transport node, for any service
 * (mail, IM): records in the node's TransportStorage, sub-database
 * `<service>.accounts`, keyed [deviceId, accountId] so that one device's
 * range never reaches into another's. Secrets are sealed with the node's
 * CredentialCipher under the account id as context: a sealed secret copied
 * onto another record does not open. A put resolves once its transaction is
 * committed, so an account is durable before the device hears it was added.
 *
 * Records carry a version `v`. A service's AccountCodec writes its current
 * version and reads every version up to it, so a node reads what an older
 * release wrote; a record from a newer release is refused (internal), never
 * half read.
 *
 * Older releases kept each service's accounts in an environment of its own,
 * `<dataDir>/transport/<service>-accounts.mdb`, keys
 * `<service>.account/<deviceId>/<accountId>`, the same records. The first open
 * copies them into the sub-database (one transaction; a record already there
 * is kept) and renames the file to `<…>.mdb.migrated`, kept for a rollback.
 * A crash before the rename copies again at the next open, changing nothing.
 */
import { existsSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { type Database, open } from 'lmdb';
import { GatewayError } from '../../../device-protocol/errors.ts';
import type { ServiceName } from '../../store/device-profile.ts';
import type { CredentialCipher } from '../credentials.ts';
import { assertAccountRoom } from './outbound.ts';
import type { TransportStorage } from './transport-storage.ts';

/** What every account record holds, whatever its service and version. */
export interface StoredAccount {
  v: number;
  id: string;
  deviceId: string;
  createdAt: number;
}

/** How one service's accounts become records and back (the thin typed layer over this store). */
export interface AccountCodec<Account, Input, Stored extends StoredAccount> {
  service: ServiceName;
  /** The version `toRecord` writes; `fromRecord` reads 1 to this. */
  version: number;
  /** The error for an account id this device does not have (mail.not_found, im.not_found). */
  notFound(accountId: string): GatewayError;
  /** The record to store, every secret sealed with `seal`; `createdAt` is the first put's. */
  toRecord(
    input: Input,
    meta: { id: string; deviceId: string; createdAt: number; now: number },
    seal: (secret: string) => string,
  ): Stored;
  /** The account from a record of any known version, secrets opened with `open`. */
  fromRecord(record: Stored, open: (sealed: string) => string): Account;
}

type AccountKey = [deviceId: string, accountId: string];

export class SealedAccountStore<Account, Input, Stored extends StoredAccount> {
  readonly #db: Database<Stored, AccountKey>;
  readonly #cipher: CredentialCipher;
  readonly #codec: AccountCodec<Account, Input, Stored>;

  constructor(opts: {
    storage: TransportStorage;
    cipher: CredentialCipher;
    codec: AccountCodec<Account, Input, Stored>;
  }) {
    this.#codec = opts.codec;
    this.#cipher = opts.cipher;
    this.#db = opts.storage.database<Stored, AccountKey>(`${opts.codec.service}.accounts`);
    migrateOwnEnvironment(opts.storage.dir, opts.codec.service, this.#db);
  }

  /** Stores the account under `id`, replacing what was there (its createdAt kept). */
  async put(deviceId: string, id: string, input: Input, now: number): Promise<Account> {
    const previous = this.#db.get([deviceId, id]);
    const record = this.#codec.toRecord(
      input,
      { id, deviceId, createdAt: previous?.createdAt ?? now, now },
      (s) => this.#cipher.encrypt(s, id),
    );
    await this.#db.put([deviceId, id], record);
    return this.#open(record);
  }

  /**
   * Stores a new account under `id` unless the device already holds `max`
   * (policy.too_many_accounts). Counted and written in one transaction, so
   * concurrent adds of one device cannot pass the cap together.
   */
  async putWithin(deviceId: string, id: string, input: Input, now: number, max: number): Promise<Account> {
    const previous = this.#db.get([deviceId, id]);
    const record = this.#codec.toRecord(
      input,
      { id, deviceId, createdAt: previous?.createdAt ?? now, now },
      (s) => this.#cipher.encrypt(s, id),
    );
    await this.#db.transaction(() => {
      if (!this.#db.doesExist([deviceId, id])) assertAccountRoom(this.count(deviceId), max);
      this.#db.putSync([deviceId, id], record);
    });
    return this.#open(record);
  }

  /** How many accounts the device has (keys only: no secret is opened). */
  count(deviceId: string): number {
    return this.#db.getKeysCount({ start: [deviceId], end: [deviceId, '\uffff'] });
  }

  /** The account, only if this device has it; else the service's not-found error. */
  get(deviceId: string, accountId: string): Account {
    const record = this.#db.get([deviceId, accountId]);
    if (record === undefined) throw this.#codec.notFound(accountId);
    return this.#open(record);
  }

  /** Whether this device has the account, without opening its secrets (a hot path). */
  has(deviceId: string, accountId: string): boolean {
    return this.#db.doesExist([deviceId, accountId]);
  }

  list(deviceId: string): Account[] {
    const out: Account[] = [];
    for (const { value } of this.#db.getRange({ start: [deviceId], end: [deviceId, '\uffff'] })) {
      out.push(this.#open(value));
    }
    return out;
  }

  /** Accounts per device, from the keys alone (the heartbeat's counts). */
  census(): Map<string, number> {
    const out = new Map<string, number>();
    for (const [deviceId] of this.#db.getKeys({})) out.set(deviceId, (out.get(deviceId) ?? 0) + 1);
    return out;
  }

  /** Every device with at least one account. */
  devices(): string[] {
    const out = new Set<string>();
    for (const [deviceId] of this.#db.getKeys({})) out.add(deviceId);
    return [...out];
  }

  remove(deviceId: string, accountId: string): Promise<boolean> {
    return this.#db.remove([deviceId, accountId]);
  }

  #open(record: Stored): Account {
    const v = record.v;
    if (!Number.isInteger(v) || v < 1 || v > this.#codec.version) {
      throw new GatewayError('internal', `${this.#codec.service} account record version ${v} is unknown`);
    }
    return this.#codec.fromRecord(record, (sealed) => this.#cipher.decrypt(sealed, record.id));
  }
}

/** Copies the accounts an older release kept in `<service>-accounts.mdb` into `db` (see the header). */
function migrateOwnEnvironment(
  dir: string,
  service: ServiceName,
  db: Database<StoredAccount, AccountKey>,
): void {
  const file = join(dir, `${service}-accounts.mdb`);
  if (!existsSync(file)) return;
  const legacy = open<StoredAccount, string>({ path: file, encoding: 'msgpack', readOnly: true });
  const prefix = `${service}.account/`;
  try {
    db.transactionSync(() => {
      for (const { value } of legacy.getRange({ start: prefix, end: `${prefix}\uffff` })) {
        // No release wrote a record without both; such a thing stays behind in the renamed file.
        if (typeof value?.deviceId !== 'string' || typeof value.id !== 'string') continue;
        const key: AccountKey = [value.deviceId, value.id];
        if (!db.doesExist(key)) db.putSync(key, value);
      }
    });
  } finally {
    // Synchronous for a read-only environment whose reads are done.
    void legacy.close();
  }
  renameSync(file, `${file}.migrated`);
  rmSync(`${file}-lock`, { force: true });
}

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
 *
 * In a cluster the records live in the shared state instead (AccountRecords
 * over a SharedTable, `<service>_accounts`, JetStream KV): any transport can
 * then serve a device whose node died. There is no multi-key transaction in
 * KV, so one key holds all of a device's accounts (a handful): a put, the
 * per-device cap and a remove are one compare-and-set on that key. The
 * secrets stay sealed; every transport holds the same credentials key.
 */
import { existsSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { type Database, open } from 'lmdb';
import { z } from 'zod';
import { GatewayError } from '../../../device-protocol/errors.ts';
import { modify, type SharedTable } from '../../store/shared/table.ts';
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

/** Where the records are: the node's lmdb (one node) or the shared state (cluster). */
export interface AccountRecords<Stored extends StoredAccount> {
  get(deviceId: string, accountId: string): Stored | undefined;
  has(deviceId: string, accountId: string): boolean;
  count(deviceId: string): number;
  /** The device's records in account id order. */
  list(deviceId: string): Stored[];
  /** [deviceId, accountId] of every record. */
  keys(): Iterable<AccountKey>;
  /** Stores `make(previous)`; with `max`, refused at the cap unless the account exists (one step). */
  put(
    deviceId: string,
    id: string,
    make: (previous: Stored | undefined) => Stored,
    max?: number,
  ): Promise<Stored>;
  remove(deviceId: string, accountId: string): Promise<boolean>;
}

export class SealedAccountStore<Account, Input, Stored extends StoredAccount> {
  readonly #records: AccountRecords<Stored>;
  readonly #cipher: CredentialCipher;
  readonly #codec: AccountCodec<Account, Input, Stored>;

  constructor(
    opts: {
      cipher: CredentialCipher;
      codec: AccountCodec<Account, Input, Stored>;
    } & ({ storage: TransportStorage } | { records: AccountRecords<Stored> }),
  ) {
    this.#codec = opts.codec;
    this.#cipher = opts.cipher;
    this.#records =
      'records' in opts ? opts.records : new LmdbAccountRecords<Stored>(opts.storage, opts.codec.service);
  }

  /** Stores the account under `id`, replacing what was there (its createdAt kept). */
  async put(deviceId: string, id: string, input: Input, now: number): Promise<Account> {
    return this.#open(
      await this.#records.put(deviceId, id, (previous) => this.#record(deviceId, id, input, now, previous)),
    );
  }

  /**
   * Stores a new account under `id` unless the device already holds `max`
   * (policy.too_many_accounts). Counted and written in one step, so
   * concurrent adds of one device cannot pass the cap together.
   */
  async putWithin(deviceId: string, id: string, input: Input, now: number, max: number): Promise<Account> {
    const make = (previous: Stored | undefined) => this.#record(deviceId, id, input, now, previous);
    return this.#open(await this.#records.put(deviceId, id, make, max));
  }

  /** How many accounts the device has (keys only: no secret is opened). */
  count(deviceId: string): number {
    return this.#records.count(deviceId);
  }

  /** The account, only if this device has it; else the service's not-found error. */
  get(deviceId: string, accountId: string): Account {
    const record = this.#records.get(deviceId, accountId);
    if (record === undefined) throw this.#codec.notFound(accountId);
    return this.#open(record);
  }

  /** Whether this device has the account, without opening its secrets (a hot path). */
  has(deviceId: string, accountId: string): boolean {
    return this.#records.has(deviceId, accountId);
  }

  list(deviceId: string): Account[] {
    return this.#records.list(deviceId).map((record) => this.#open(record));
  }

  /** Accounts per device, from the keys alone (the heartbeat's counts). */
  census(): Map<string, number> {
    const out = new Map<string, number>();
    for (const [deviceId] of this.#records.keys()) out.set(deviceId, (out.get(deviceId) ?? 0) + 1);
    return out;
  }

  /** Every device with at least one account. */
  devices(): string[] {
    const out = new Set<string>();
    for (const [deviceId] of this.#records.keys()) out.add(deviceId);
    return [...out];
  }

  remove(deviceId: string, accountId: string): Promise<boolean> {
    return this.#records.remove(deviceId, accountId);
  }

  #record(deviceId: string, id: string, input: Input, now: number, previous: Stored | undefined): Stored {
    return this.#codec.toRecord(input, { id, deviceId, createdAt: previous?.createdAt ?? now, now }, (s) =>
      this.#cipher.encrypt(s, id),
    );
  }

  #open(record: Stored): Account {
    const v = record.v;
    if (!Number.isInteger(v) || v < 1 || v > this.#codec.version) {
      throw new GatewayError('internal', `${this.#codec.service} account record version ${v} is unknown`);
    }
    return this.#codec.fromRecord(record, (sealed) => this.#cipher.decrypt(sealed, record.id));
  }
}

/** The node's records: sub-database `<service>.accounts` of its TransportStorage. */
export class LmdbAccountRecords<Stored extends StoredAccount> implements AccountRecords<Stored> {
  readonly #db: Database<Stored, AccountKey>;

  constructor(storage: TransportStorage, service: ServiceName) {
    this.#db = storage.database<Stored, AccountKey>(`${service}.accounts`);
    migrateOwnEnvironment(storage.dir, service, this.#db);
  }

  get(deviceId: string, accountId: string): Stored | undefined {
    return this.#db.get([deviceId, accountId]);
  }

  has(deviceId: string, accountId: string): boolean {
    return this.#db.doesExist([deviceId, accountId]);
  }

  count(deviceId: string): number {
    return this.#db.getKeysCount({ start: [deviceId], end: [deviceId, '\uffff'] });
  }

  list(deviceId: string): Stored[] {
    const out: Stored[] = [];
    for (const { value } of this.#db.getRange({ start: [deviceId], end: [deviceId, '\uffff'] }))
      out.push(value);
    return out;
  }

  keys(): Iterable<AccountKey> {
    return this.#db.getKeys({});
  }

  async put(
    deviceId: string,
    id: string,
    make: (previous: Stored | undefined) => Stored,
    max?: number,
  ): Promise<Stored> {
    const record = make(this.#db.get([deviceId, id]));
    if (max === undefined) {
      await this.#db.put([deviceId, id], record);
      return record;
    }
    await this.#db.transaction(() => {
      if (!this.#db.doesExist([deviceId, id])) assertAccountRoom(this.count(deviceId), max);
      this.#db.putSync([deviceId, id], record);
    });
    return record;
  }

  async remove(deviceId: string, accountId: string): Promise<boolean> {
    // lmdb's remove resolves true for an absent key too.
    if (!this.#db.doesExist([deviceId, accountId])) return false;
    return this.#db.remove([deviceId, accountId]);
  }
}

/** One device's accounts in the shared state: all under the device id, sorted by account id. */
export interface DeviceAccountsV1 {
  v: 1;
  accounts: StoredAccount[];
}

export const DEVICE_ACCOUNTS_VERSION = 1 as const;

/** The shared table of a service's accounts. */
export function accountTableName(service: ServiceName): string {
  return `${service}_accounts`;
}

const deviceAccountsEnvelope = z.looseObject({ v: z.number().min(1), accounts: z.array(z.unknown()) });
/** What every stored account has; the rest is the codec's to check when it opens the record. */
const storedAccountHead = z.looseObject({
  id: z.string(),
  deviceId: z.string(),
  v: z.number(),
  createdAt: z.number(),
});

/**
 * Checks what another node (or release) wrote: the envelope and each record's
 * common fields; a record's own version and fields are the codec's to check
 * when it is opened. A newer envelope only adds fields, so its known ones are read.
 */
export function readDeviceAccounts(raw: unknown): DeviceAccountsV1 {
  if (!deviceAccountsEnvelope.shape.v.safeParse((raw as { v?: unknown } | null)?.v).success) {
    throw new GatewayError('registry.bad_record', 'device accounts record has no version');
  }
  const envelope = deviceAccountsEnvelope.safeParse(raw);
  if (!envelope.success) throw new GatewayError('registry.bad_record', 'device accounts: no list');
  if (!envelope.data.accounts.every((a) => storedAccountHead.safeParse(a).success)) {
    throw new GatewayError(
      'registry.bad_record',
      'device accounts: a record lacks id, device, version or time',
    );
  }
  return { v: 1, accounts: envelope.data.accounts as StoredAccount[] };
}

/** The cluster's records: a SharedTable opened with readDeviceAccounts, one key per device. */
export class SharedAccountRecords<Stored extends StoredAccount> implements AccountRecords<Stored> {
  readonly #table: SharedTable<DeviceAccountsV1>;

  constructor(table: SharedTable<DeviceAccountsV1>) {
    this.#table = table;
  }

  #of(deviceId: string, entry = this.#table.get(deviceId)): Stored[] {
    // A record filed under another device than its own is never this device's.
    return ((entry?.value.accounts ?? []) as Stored[]).filter((a) => a.deviceId === deviceId);
  }

  get(deviceId: string, accountId: string): Stored | undefined {
    return this.#of(deviceId).find((a) => a.id === accountId);
  }

  has(deviceId: string, accountId: string): boolean {
    return this.get(deviceId, accountId) !== undefined;
  }

  count(deviceId: string): number {
    return this.#of(deviceId).length;
  }

  list(deviceId: string): Stored[] {
    return this.#of(deviceId);
  }

  *keys(): Iterable<AccountKey> {
    for (const { key } of this.#table.entries()) {
      for (const a of this.#of(key)) yield [key, a.id];
    }
  }

  async put(
    deviceId: string,
    id: string,
    make: (previous: Stored | undefined) => Stored,
    max?: number,
  ): Promise<Stored> {
    let stored: Stored | undefined;
    await modify(this.#table, deviceId, (current) => {
      const mine = this.#of(deviceId, current);
      const previous = mine.find((a) => a.id === id);
      if (previous === undefined && max !== undefined) assertAccountRoom(mine.length, max);
      stored = make(previous);
      const accounts = [...mine.filter((a) => a.id !== id), stored].sort((a, b) => (a.id < b.id ? -1 : 1));
      return { v: DEVICE_ACCOUNTS_VERSION, accounts };
    });
    return stored as Stored;
  }

  async remove(deviceId: string, accountId: string): Promise<boolean> {
    let removed = false;
    await modify(this.#table, deviceId, (current) => {
      const mine = this.#of(deviceId, current);
      const rest = mine.filter((a) => a.id !== accountId);
      removed = rest.length < mine.length;
      if (!removed) return undefined;
      return rest.length === 0 ? null : { v: DEVICE_ACCOUNTS_VERSION, accounts: rest };
    });
    return removed;
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

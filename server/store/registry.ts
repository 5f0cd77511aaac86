import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { type Database, open, type RootDatabase } from 'lmdb';
import { GatewayError } from '../../device-protocol/errors.ts';
import type { DeviceInfo } from '../bus/bus.ts';
import { type AdminUser, AdminUsers } from './admin-users.ts';
import { type AuditActor, AuditOutbox } from './audit-outbox.ts';
import {
  type DeviceAuthFields,
  type DeviceAuthRecordV1,
  type DeviceAuthSource,
  deviceAuthRecord,
} from './device-auth.ts';
import { importDeviceRows, importSharedRows } from './device-batch-import.ts';
import { deviceInfo, deviceKeyEpoch, profileHeartbeatMs } from './device-credentials.ts';
import type { ProvisionedAccount } from './device-profile.ts';
import { type DeviceIndexes, type DevicePatch, DeviceWrites } from './device-writes.ts';
import {
  type ImportMode,
  type ImportResult,
  type ImportRow,
  type NewDevice,
  SECRET_MAX,
} from './import-rows.ts';
import { ImportJobs } from './import-jobs.ts';
import { LastSeen } from './last-seen.ts';
import { AccountStore, type ProvisionedAccountRecord } from './provisioned-accounts.ts';
import {
  type AdminRole,
  type AdminUserRecordV1,
  type Device,
  type DeviceRecordV1,
  type DeviceStatus,
  deviceView,
  onlyLastSeenDiffers,
  readAdminUserRecord,
  readDeviceRecord,
} from './records.ts';
import { type RefRecord, RefStore, type StoredRef } from './ref-store.ts';
import { lmdbDeviceIndexes, type RegistryTable, SharedRegistryTable } from './registry-table.ts';
import { adoptLocalRecords } from './registry-adopt.ts';
import {
  exportTables,
  importTables,
  type LmdbRegistryDatabases,
  lmdbTables,
  type RegistryTableSet,
} from './registry-tables.ts';
import {
  importShared,
  readAccountRecord,
  readRefRecord,
  sharedTableName,
  type TransferRecord,
} from './registry-transfer.ts';
import { verifyDeviceSecret } from './secrets.ts';
import { lowerBound, type SharedState, type TableOptions } from './shared/table.ts';

export type { AdminUser } from './admin-users.ts';
export {
  type ImportMode,
  type ImportRejection,
  type ImportResult,
  type ImportRow,
  importRowProblem,
  type NewDevice,
  prepareImportRow,
} from './import-rows.ts';

/**
 * The device registry (and admin users): on a single node in one lmdb
 * environment at `<data>/registry`; in a cluster (RegistryOptions.shared) its
 * tables — devices, admin users, reference data, provisioned accounts — are
 * the shared-state tables `registry_<table>` (JetStream KV), so every admin
 * node serves the same registry, while the node's lmdb environment keeps
 * only what is the node's own: the audit outbox and import jobs (and, once,
 * the records it held before, which move into the cluster: registry-adopt.ts). Every part
 * reads and writes a table through RegistryTable (registry-table.ts): one
 * key's read-check-write, atomic on both backends; the indexes are the
 * devices' keys (IMEI uniqueness) or computed from the devices read (IMSI,
 * operator), so two admin nodes writing at once cannot make them disagree.
 *
 * Several processes may open the same environment at once (a running gateway
 * and the `mmgw device` CLI): LMDB serialises writers with a lock in the
 * environment's lock file and gives every reader a consistent snapshot, so
 * every read-check-write of an lmdb table (registry-table.ts) runs inside
 * one write transaction and is therefore atomic across processes too.
 *
 * Writes use lmdb's asynchronous transactions: the main thread never blocks
 * on the write lock while another process (say, a 100k-row import) holds it.
 *
 * A change may name who made it (an AuditActor): its audit entry is then
 * written in the same transaction (audit-outbox.ts). The CLI does so for
 * every change; the admin API writes its own entries. Large imports run as
 * jobs (import-jobs.ts, driven by device-import.ts); opening the registry
 * rolls back the jobs whose process died (on the shared state they end
 * failed, their rows kept).
 *
 * In cluster mode the admin role publishes the devices into the shared
 * `device_auth` table the edges authenticate from (device-auth.ts): the
 * registry tells listeners (onDevicesChanged) the IMEIs of every committed
 * device change, import batches included, and the publisher reconciles the
 * whole table periodically for changes made by other processes (the CLI).
 * exportRecords/importRecords move the whole registry (registry-transfer.ts).
 *
 * The class is the public entry point: it owns the environment, the closed
 * check and the change listeners, and hands each of its parts only the
 * databases it needs: writes to one device (device-writes.ts), in-memory
 * batch imports (device-batch-import.ts), row checks (import-rows.ts),
 * reference data (ref-store.ts), provisioned accounts
 * (provisioned-accounts.ts), admin users (admin-users.ts), last-seen times
 * (last-seen.ts), what authentication answers (device-credentials.ts) and
 * the whole-registry transfer (registry-tables.ts).
 */

export interface ListDevicesOptions {
  operator?: string;
  status?: DeviceStatus;
  /** IMEI prefix (for example a TAC: the first 8 digits name the model). */
  prefix?: string;
  /** Default 1000. */
  limit?: number;
  /** Page after this IMEI (exclusive): pass the last IMEI of the previous page. */
  after?: string;
}

export interface RegistryOptions {
  /**
   * Cluster mode: the registry's tables live in this shared state (the
   * node's lmdb keeps the audit outbox and the import jobs' own records; their
   * rows go to the shared devices table, import-shared.ts). Closing the
   * registry does not close it.
   */
  shared?: SharedState;
  /** Injected clock (epoch ms). */
  now?: () => number;
  /** How often batched last-seen times are written. Default 5000 ms. */
  lastSeenFlushMs?: number;
  /** Refuse (registry.not_found) instead of creating an empty registry: read-only tools on a mistyped --data. */
  mustExist?: boolean;
  /**
   * Cluster mode: move the records of this data directory's lmdb registry into
   * the cluster, once (registry-adopt.ts). Default true (an admin node); the
   * CLI passes false and leaves that move to the admin node of the directory.
   */
  adopt?: boolean;
}

export class Registry implements DeviceAuthSource {
  readonly path: string;
  /** Where the tables live: 'lmdb' (this node) or the shared state's kind. */
  readonly backend: 'lmdb' | SharedState['kind'];
  private readonly env: RootDatabase;
  /** The lmdb databases (the single-node tables; in cluster mode only the transfer uses them, empty). */
  private readonly lmdb: LmdbRegistryDatabases;
  private readonly devices: RegistryTable<DeviceRecordV1>;
  private readonly admins: RegistryTable<AdminUserRecordV1>;
  private readonly refs: RegistryTable<StoredRef>;
  private readonly accounts: RegistryTable<ProvisionedAccountRecord>;
  /** Cluster mode: `<imsi>:<imei>` of every device, sorted, rebuilt after a device change. */
  private imsiKeys: string[] | undefined;
  private readonly unwatch: Array<() => void> = [];
  private readonly shared: SharedState | undefined;
  private readonly meta: Database<unknown, string>;
  /** Audit entries of changes made here, until the admin role relays them to its audit log. */
  readonly auditOutbox: AuditOutbox;
  /** Import jobs: their results, sealed secrets and the rows they created. */
  readonly imports: ImportJobs;
  private readonly now: () => number;
  private readonly refStore: RefStore;
  private readonly accountStore: AccountStore;
  private readonly adminUsers: AdminUsers;
  private readonly lastSeen: LastSeen;
  private readonly writes: DeviceWrites;
  private closed = false;
  /** Told the IMEIs of committed device changes (the cluster's device_auth publisher). */
  private readonly deviceListeners = new Set<(imeis: string[]) => void>();

  private constructor(path: string, options: RegistryOptions, shared?: RegistryTableSet) {
    this.path = path;
    this.now = options.now ?? Date.now;
    this.shared = options.shared;
    this.backend = options.shared?.kind ?? 'lmdb';
    this.env = open({ path, maxDbs: 16 });
    const lmdb: LmdbRegistryDatabases = {
      devices: this.env.openDB<DeviceRecordV1, string>({ name: 'devices' }),
      admins: this.env.openDB<AdminUserRecordV1, string>({ name: 'admins' }),
      refs: this.env.openDB<StoredRef, string[]>({ name: 'refdata' }),
      imsis: this.env.openDB<boolean, string>({ name: 'imsi' }),
      accounts: this.env.openDB<ProvisionedAccountRecord, string[]>({ name: 'accounts' }),
    };
    this.lmdb = lmdb;
    const tables = shared ?? lmdbTables(lmdb);
    this.devices = tables.devices;
    this.admins = tables.admins;
    this.refs = tables.refs;
    this.accounts = tables.accounts;
    if (shared) {
      // Another node's device change is this node's to publish too (device_auth): if that node
      // died before publishing, the edges still learn it. Every node publishes the same record.
      this.unwatch.push(
        this.devices.watch((imei, value, previous) => {
          // The last-seen flush of every admin node rewrites device records all the time:
          // nothing the IMSI index or device_auth reads changed.
          if (value && previous && onlyLastSeenDiffers(previous, value)) return;
          this.imsiKeys = undefined;
          this.devicesChanged([imei]);
        }),
      );
    }
    this.meta = this.env.openDB<unknown, string>({ name: 'meta' });
    this.auditOutbox = new AuditOutbox(this.env.openDB({ name: 'auditOutbox' }), this.now);
    this.imports = new ImportJobs({
      devices: lmdb.devices,
      imsis: lmdb.imsis,
      accounts: lmdb.accounts,
      jobs: this.env.openDB({ name: 'imports' }),
      outbox: this.auditOutbox,
      now: this.now,
      changed: (imeis) => this.devicesChanged(imeis),
      ...(shared
        ? { shared: { devices: this.devices, removeDevice: (imei) => this.removeShared(imei) } }
        : {}),
    });
    const assertOpen = () => this.assertOpen();
    this.refStore = new RefStore({ refs: this.refs, now: this.now, assertOpen, outbox: this.auditOutbox });
    this.accountStore = new AccountStore({
      accounts: this.accounts,
      hasDevice: (imei) => this.devices.has(imei),
      outbox: this.auditOutbox,
      now: this.now,
      assertOpen,
    });
    this.adminUsers = new AdminUsers({
      admins: this.admins,
      outbox: this.auditOutbox,
      now: this.now,
      assertOpen,
    });
    this.writes = new DeviceWrites({
      devices: this.devices,
      indexes: shared ? this.sharedIndexes() : lmdbDeviceIndexes(lmdb.imsis, lmdb.accounts),
      outbox: this.auditOutbox,
      now: this.now,
      assertOpen,
      changed: (imeis) => this.devicesChanged(imeis),
      forgetLastSeen: (imei) => this.lastSeen.forget(imei),
    });
    this.lastSeen = new LastSeen(
      { devices: this.devices, now: this.now, isClosed: () => this.closed },
      options.lastSeenFlushMs ?? 5000,
    );
  }

  /**
   * Opens (creating if needed) the registry under `<dataDir>/registry`; with
   * `options.shared`, its tables on the shared state (loaded before this resolves).
   */
  static async open(dataDir: string, options: RegistryOptions = {}): Promise<Registry> {
    const path = join(dataDir, 'registry');
    if (options.mustExist && !existsSync(join(path, 'data.mdb'))) {
      throw new GatewayError('registry.not_found', `no registry in ${dataDir} (is --data right?)`, {
        field: 'data',
      });
    }
    // The shared tables first: a cluster that cannot be reached leaves nothing on disk.
    const shared = options.shared ? await openSharedTables(options.shared) : undefined;
    mkdirSync(path, { recursive: true });
    const registry = new Registry(path, options, shared);
    if (shared) {
      if (options.adopt !== false) await adoptLocalRecords(registry.lmdb, shared, registry.meta);
    } else await registry.buildImsiIndex();
    await registry.imports.recover();
    return registry;
  }

  /** Once per registry: indexes the IMSIs of devices written before the index existed. */
  private async buildImsiIndex(): Promise<void> {
    const { devices, imsis } = this.lmdb;
    if (this.meta.get('imsiIndex') === 1) return;
    await this.env.transaction(() => {
      if (this.meta.get('imsiIndex') === 1) return;
      for (const { key, value } of devices.getRange({})) {
        if (value.imsi) imsis.put(`${value.imsi}:${key}`, true);
      }
      this.meta.put('imsiIndex', 1);
    });
  }

  /**
   * Shared state: the IMSI index is computed from the devices (imsiKeys), and
   * a removed device's accounts are removed after it, one key at a time (a
   * crash in between leaves accounts no device shows; a device added again
   * under the IMEI would show them).
   */
  private sharedIndexes(): DeviceIndexes {
    return {
      imsiMoved: () => {
        this.imsiKeys = undefined;
      },
      removedInChange() {},
      removedAfter: (imei) => this.removeAccountsOf(imei),
    };
  }

  /** Shared state: a removed device's accounts, one key at a time. */
  private async removeAccountsOf(imei: string): Promise<void> {
    for (const { key } of [...this.accounts.rows({ prefix: `${imei}/` })]) {
      await this.accounts.change(key, (a) =>
        a ? { remove: true, result: undefined } : { result: undefined },
      );
    }
  }

  /** Shared state: an import's rollback removes a device it wrote, then the device's accounts. */
  private async removeShared(imei: string): Promise<boolean> {
    const removed = await this.devices.change(imei, (d) =>
      d ? { remove: true, result: true } : { result: false },
    );
    if (removed) {
      this.imsiKeys = undefined;
      await this.removeAccountsOf(imei);
    }
    return removed;
  }

  /** `<imsi>:<imei>` keys starting with `prefix`, in order. */
  private *imsiKeysFrom(prefix: string): Generator<string> {
    if (!this.shared) {
      const range = { start: prefix, end: `${prefix}\uffff`, snapshot: true };
      for (const key of this.lmdb.imsis.getKeys(range)) yield String(key);
      return;
    }
    if (!this.imsiKeys) {
      const built: string[] = [];
      for (const { key, value } of this.devices.rows()) if (value.imsi) built.push(`${value.imsi}:${key}`);
      this.imsiKeys = built.sort();
    }
    // The keys with the prefix are one run in the sorted list, from the first not below it.
    const keys = this.imsiKeys;
    for (let i = lowerBound(keys, prefix); i < keys.length && keys[i]?.startsWith(prefix); i++) {
      yield keys[i] as string;
    }
  }

  /** Devices whose IMSI starts with `prefix`, in IMSI order (then IMEI). */
  *iterateDevicesByImsi(prefix: string): Generator<Device> {
    this.assertOpen();
    for (const key of this.imsiKeysFrom(prefix)) {
      const imei = key.slice(key.indexOf(':') + 1);
      const device = this.getDevice(imei);
      if (device) yield device;
    }
  }

  // ---- devices -----------------------------------------------------------

  /** Provisions a device. The secret is returned once and never stored (only its hash). */
  addDevice(input: NewDevice, audit?: AuditActor): Promise<{ device: Device; secret: string }> {
    return this.writes.add(input, audit);
  }

  getDevice(imei: string): Device | undefined {
    this.assertOpen();
    const record = this.devices.get(imei);
    return record === undefined ? undefined : deviceView(record);
  }

  /** Is there a device with this IMEI? (No record is decoded: an import asks once per row.) */
  hasDevice(imei: string): boolean {
    this.assertOpen();
    return this.devices.has(imei);
  }

  /**
   * Checks a device's credentials. Failures carry the code the handset gets:
   * auth.unknown_device, auth.bad_secret, then auth.disabled (status is only
   * revealed to a caller who knows the secret).
   */
  authenticate(imei: string, secret: string): DeviceInfo {
    this.assertOpen();
    const record = typeof imei === 'string' && imei.length <= 32 ? this.devices.get(imei) : undefined;
    if (record === undefined) {
      throw new GatewayError('auth.unknown_device', `no device with IMEI ${String(imei).slice(0, 32)}`);
    }
    if (
      typeof secret !== 'string' ||
      secret.length > SECRET_MAX ||
      !verifyDeviceSecret(secret, record.secretHash)
    ) {
      throw new GatewayError('auth.bad_secret');
    }
    if (record.status !== 'enabled') throw new GatewayError('auth.disabled');
    this.touchLastSeen(imei);
    return deviceInfo(record, this.heartbeatMs(record));
  }

  /** For token-based hello and resume: the device must still exist and be enabled. */
  lookup(imei: string): DeviceInfo {
    this.assertOpen();
    const record = typeof imei === 'string' && imei.length <= 32 ? this.devices.get(imei) : undefined;
    if (record === undefined) throw new GatewayError('auth.unknown_device');
    if (record.status !== 'enabled') throw new GatewayError('auth.disabled');
    return deviceInfo(record, this.heartbeatMs(record));
  }

  /** The heartbeat the device's profiles ask for (device-credentials.ts). */
  private heartbeatMs(r: DeviceRecordV1): number | undefined {
    return profileHeartbeatMs(r, (kind, id) => this.getRef(kind, id));
  }

  setStatus(imei: string, status: DeviceStatus, audit?: AuditActor): Promise<Device> {
    return this.writes.setStatus(imei, status, audit);
  }

  /** Replaces the secret (the old one stops working at once); the new one is returned once. */
  resetSecret(imei: string, audit?: AuditActor): Promise<{ device: Device; secret: string }> {
    return this.writes.resetSecret(imei, audit);
  }

  removeDevice(imei: string, audit?: AuditActor): Promise<void> {
    return this.writes.remove(imei, audit);
  }

  /** IMEI order. Filters other than prefix scan the key range; fine up to millions of devices. */
  listDevices(options: ListDevicesOptions = {}): Device[] {
    const limit = options.limit ?? 1000;
    const out: Device[] = [];
    if (limit <= 0) return out;
    for (const device of this.iterateDevices(options)) {
      out.push(device);
      if (out.length >= limit) break;
    }
    return out;
  }

  /** Every device matching the filters, in IMEI order, without holding them all in memory. */
  *iterateDevices(options: Omit<ListDevicesOptions, 'limit'> = {}): Generator<Device> {
    this.assertOpen();
    const range = {
      ...(options.prefix ? { prefix: options.prefix } : {}),
      ...(options.after !== undefined ? { after: options.after } : {}),
    };
    for (const { value: record } of this.devices.rows(range)) {
      if (options.operator !== undefined && record.operator !== options.operator) continue;
      if (options.status !== undefined && record.status !== options.status) continue;
      yield deviceView(record);
    }
  }

  /** The number of devices from the database header: O(1), where countDevices walks every key. */
  deviceTotal(): number {
    this.assertOpen();
    return this.devices.count();
  }

  countDevices(): number {
    this.assertOpen();
    return this.shared ? this.devices.count() : this.lmdb.devices.getKeysCount();
  }

  /** Writes rows held in memory in one transaction, all or nothing per call (device-batch-import.ts). */
  async importDevices(
    rows: ImportRow[],
    options: { mode: ImportMode; onProgress?: (done: number, total: number) => void },
  ): Promise<ImportResult> {
    this.assertOpen();
    const result = this.shared
      ? await importSharedRows({ devices: this.devices, now: this.now }, rows, options)
      : await importDeviceRows(
          { devices: this.lmdb.devices, imsis: this.lmdb.imsis, now: this.now },
          rows,
          options,
        );
    this.devicesChanged(result.secrets.map((x) => x.imei));
    return result;
  }

  /**
   * Notes that a device was seen. Cheap: kept in memory and written in one
   * transaction every few seconds (and on close), because doing a write per
   * authentication would make the registry the bottleneck of a reconnect storm.
   */
  touchLastSeen(imei: string, at: number = this.now()): void {
    this.lastSeen.touch(imei, at);
  }

  /** Writes pending last-seen times now. */
  flushLastSeen(): Promise<void> {
    return this.lastSeen.flush();
  }

  /** Changes the fields given (checked like a new row); the status too. */
  updateDevice(imei: string, patch: DevicePatch): Promise<Device> {
    return this.writes.patch(imei, patch);
  }

  // ---- reference data (the admin API uses these) -------------------------

  listRefs(kind: string): RefRecord[] {
    return this.refStore.list(kind);
  }

  getRef(kind: string, id: string): RefRecord | undefined {
    return this.refStore.get(kind, id);
  }

  /**
   * Creates (mode 'create': registry.duplicate if it exists) or replaces (mode
   * 'replace': registry.not_found if absent; when `revision` is given it must be
   * the stored one, else the answer is undefined and nothing is written).
   * Returns the record before and after.
   */
  putRef(
    kind: string,
    id: string,
    data: Record<string, unknown>,
    options: { mode: 'create' | 'replace'; revision?: number },
    audit?: AuditActor,
  ): Promise<{ before?: RefRecord; after: RefRecord } | undefined> {
    return this.refStore.put(kind, id, data, options, audit);
  }

  /** Removes one record; returns what it was. */
  removeRef(kind: string, id: string): Promise<RefRecord> {
    return this.refStore.remove(kind, id);
  }

  // ---- provisioned accounts (operator-set credentials; the admin API and CLI use these) ----

  /** The device's provisioned accounts, by label (the secret stays sealed). */
  listDeviceAccounts(imei: string): ProvisionedAccount[] {
    return this.accountStore.list(imei);
  }

  getDeviceAccount(imei: string, label: string): ProvisionedAccount | undefined {
    return this.accountStore.get(imei, label);
  }

  /**
   * Creates or replaces one provisioned account of an existing device; the
   * caller has sealed the secret. Returns the record before (if any) and after.
   */
  putDeviceAccount(
    imei: string,
    account: Omit<ProvisionedAccount, 'createdAt' | 'updatedAt'>,
    audit?: AuditActor,
  ): Promise<{ before?: ProvisionedAccount; after: ProvisionedAccount }> {
    return this.accountStore.put(imei, account, audit);
  }

  /** Removes one provisioned account; returns what it was (registry.not_found when absent). */
  removeDeviceAccount(imei: string, label: string, audit?: AuditActor): Promise<ProvisionedAccount> {
    return this.accountStore.remove(imei, label, audit);
  }

  // ---- admin users (the admin API uses these) ---------------------------

  addAdminUser(
    input: { name: string; role: AdminRole; password: string },
    audit?: AuditActor,
  ): Promise<AdminUser> {
    return this.adminUsers.add(input, audit);
  }

  getAdminUser(name: string): AdminUser | undefined {
    return this.adminUsers.get(name);
  }

  /**
   * The user and their token epoch: a number that grows at every password or
   * role change, carried in their tokens, so that older tokens stop working.
   */
  getAdminAuth(name: string): { user: AdminUser; tokenEpoch: number } | undefined {
    return this.adminUsers.getAuth(name);
  }

  listAdminUsers(): AdminUser[] {
    return this.adminUsers.list();
  }

  /** The user when name and password match, else undefined (same answer for unknown name and bad password). */
  verifyAdminPassword(name: string, password: string): Promise<AdminUser | undefined> {
    return this.adminUsers.verifyPassword(name, password);
  }

  /** Sets a password; the user's tokens stop working (their epoch moves on). */
  setAdminPassword(name: string, password: string, audit?: AuditActor): Promise<void> {
    return this.adminUsers.setPassword(name, password, audit);
  }

  /** Gives a user another role; their tokens stop working (they log in again, with the new role). */
  setAdminRole(
    name: string,
    role: AdminRole,
    audit?: AuditActor,
  ): Promise<{ before: AdminUser; after: AdminUser }> {
    return this.adminUsers.setRole(name, role, audit);
  }

  removeAdminUser(name: string, audit?: AuditActor): Promise<void> {
    return this.adminUsers.remove(name, audit);
  }

  // ---- whole-registry transfer (registry-transfer.ts, `mmgw registry export|import`) ----

  /** Every record as stored (versioned), table by table in key order (registry-tables.ts). */
  *exportRecords(): Generator<TransferRecord> {
    this.assertOpen();
    const { devices, admins, refs, accounts } = this;
    yield* exportTables({ devices, admins, refs, accounts });
  }

  /**
   * Writes checked records (registry-transfer.ts parseExport) in ONE
   * transaction: all or nothing. A key that exists already refuses the whole
   * import (registry.duplicate).
   */
  async importRecords(records: TransferRecord[]): Promise<{ written: number }> {
    this.assertOpen();
    if (this.shared) return importShared(this.shared, records);
    const existing = await importTables(this.lmdb, records);
    if (existing) {
      throw new GatewayError(
        'registry.duplicate',
        `${existing.table} ${existing.key} is already in the registry`,
      );
    }
    this.devicesChanged(records.filter((r) => r.table === 'devices').map((r) => r.key));
    return { written: records.length };
  }

  // ---- changes, for the cluster's shared device_auth table (device-auth.ts) ----

  /** Calls `listener` with the IMEIs of every committed device change from now on. */
  onDevicesChanged(listener: (imeis: string[]) => void): () => void {
    this.deviceListeners.add(listener);
    return () => this.deviceListeners.delete(listener);
  }

  deviceAuth(imei: string): DeviceAuthRecordV1 | undefined {
    this.assertOpen();
    const record = this.devices.get(imei);
    if (record === undefined) return undefined;
    return deviceAuthRecord(record, deviceKeyEpoch(record), this.heartbeatMs(record));
  }

  *allDeviceAuth(): Generator<DeviceAuthFields> {
    this.assertOpen();
    for (const { value: record } of this.devices.rows()) {
      const { keyEpoch: _k, ...fields } = deviceAuthRecord(record, '', this.heartbeatMs(record));
      yield fields;
    }
  }

  private devicesChanged(imeis: string[]): void {
    if (imeis.length === 0) return;
    for (const listener of this.deviceListeners) listener(imeis);
  }

  // ---- life ---------------------------------------------------------------

  /** Flushes last-seen times and closes the environment. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.lastSeen.stop();
    await this.lastSeen.flush();
    this.closed = true;
    for (const stop of this.unwatch) stop();
    await this.env.close();
  }

  private assertOpen(): void {
    if (this.closed) throw new GatewayError('internal', 'the registry is closed');
  }
}

/** The registry's tables on the shared state, each with the reader that checks and upgrades its records. */
async function openSharedTables(state: SharedState): Promise<RegistryTableSet> {
  const open = async <T>(table: 'devices' | 'admins' | 'refs' | 'accounts', read: (raw: unknown) => T) => {
    const options: TableOptions<T> = { read };
    return new SharedRegistryTable(await state.table<T>(sharedTableName(table), options));
  };
  return {
    devices: await open('devices', readDeviceRecord),
    admins: await open('admins', readAdminUserRecord),
    refs: await open('refs', readRefRecord),
    accounts: await open('accounts', readAccountRecord),
  };
}

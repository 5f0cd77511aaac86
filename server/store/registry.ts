import { createHash } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { type Database, open, type RootDatabase } from 'lmdb';
import { GatewayError } from '../../device-protocol/errors.ts';
import type { DeviceInfo } from '../bus/bus.ts';
import { type AuditActor, AuditOutbox, deviceAuditView } from './audit-outbox.ts';
import {
  type DeviceAuthFields,
  type DeviceAuthRecordV1,
  type DeviceAuthSource,
  deviceAuthRecord,
} from './device-auth.ts';
import type { ProvisionedAccount } from './device-profile.ts';
import { assertImei, imeiProblem, imsiProblem } from './imei.ts';
import { ImportJobs, type PreparedImportRow } from './import-jobs.ts';
import type { TransferRecord } from './registry-transfer.ts';
import {
  ADMIN_USER_RECORD_VERSION,
  type AdminRole,
  type AdminUserRecordV1,
  type Device,
  DEVICE_RECORD_VERSION,
  type DeviceRecordV1,
  type DeviceStatus,
  deviceView,
  readAdminUserRecord,
  readDeviceRecord,
} from './records.ts';
import {
  generateDeviceSecret,
  hashDeviceSecret,
  hashPassword,
  verifyDeviceSecret,
  verifyPassword,
} from './secrets.ts';

/**
 * The device registry (and admin users) in one lmdb environment at
 * `<data>/registry`.
 *
 * Several processes may open the same environment at once (a running gateway
 * and the `mmgw device` CLI): LMDB serialises writers with a lock in the
 * environment's lock file and gives every reader a consistent snapshot, so
 * every read-check-write below runs inside one write transaction and is
 * therefore atomic across processes too.
 *
 * Writes use lmdb's asynchronous transactions: the main thread never blocks
 * on the write lock while another process (say, a 100k-row import) holds it.
 *
 * A change may name who made it (an AuditActor): its audit entry is then
 * written in the same transaction (audit-outbox.ts). The CLI does so for
 * every change; the admin API writes its own entries. Large imports run as
 * jobs (import-jobs.ts, driven by device-import.ts); opening the registry
 * rolls back the jobs whose process died.
 *
 * In cluster mode the admin role publishes the devices into the shared
 * `device_auth` table the edges authenticate from (device-auth.ts): the
 * registry tells listeners (onDevicesChanged) the IMEIs of every committed
 * device change, import batches included, and the publisher reconciles the
 * whole table periodically for changes made by other processes (the CLI).
 * exportRecords/importRecords move the whole registry (registry-transfer.ts).
 */

export interface NewDevice {
  imei: string;
  imsi?: string;
  operator: string;
  profile?: string;
  operatorProfile?: string;
  model?: string;
  status?: DeviceStatus;
}

/** A change to a device: undefined keeps a field, null clears an optional one. */
export interface DevicePatch {
  imsi?: string | null;
  operator?: string;
  profile?: string | null;
  operatorProfile?: string | null;
  model?: string | null;
  status?: DeviceStatus;
}

/**
 * Reference data of the admin (operators, profiles, services, capabilities):
 * one versioned record per (kind, id); `revision` grows with every change.
 */
export interface RefRecord {
  kind: string;
  id: string;
  revision: number;
  createdAt: number;
  updatedAt: number;
  data: Record<string, unknown>;
}

export const REF_RECORD_VERSION = 1;

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

export interface ImportRow {
  imei: string;
  imsi?: string;
  operator: string;
  profile?: string;
  operatorProfile?: string;
  model?: string;
  status?: DeviceStatus;
  /** A secret provisioned elsewhere (for example at the factory); generated when absent. */
  secret?: string;
  /** Where the row came from (file line number), echoed back in rejections. */
  line?: number;
}

export interface ImportRejection {
  line?: number;
  imei?: string;
  code: 'registry.invalid_imei' | 'registry.invalid_imsi' | 'registry.invalid_field' | 'registry.duplicate';
  reason: string;
  /** The column at fault. */
  field?: string;
}

export type ImportMode = 'all-or-nothing' | 'valid-only';

export interface ImportResult {
  mode: ImportMode;
  total: number;
  written: number;
  rejected: ImportRejection[];
  /** One-time secrets of the devices written (those whose row gave none are generated here). */
  secrets: Array<{ imei: string; secret: string }>;
}

export interface AdminUser {
  name: string;
  role: AdminRole;
  createdAt: number;
}

export interface RegistryOptions {
  /** Injected clock (epoch ms). */
  now?: () => number;
  /** How often batched last-seen times are written. Default 5000 ms. */
  lastSeenFlushMs?: number;
  /** Refuse (registry.not_found) instead of creating an empty registry: read-only tools on a mistyped --data. */
  mustExist?: boolean;
}

const OPERATOR_MAX = 64;
const PROFILE_MAX = 64;
/** A presented secret longer than this cannot be ours (ours are 43 chars); refuse before hashing. */
const SECRET_MAX = 256;
/** A provisioned (imported) secret must carry at least 128 bits: 22 base64url characters. */
const IMPORTED_SECRET_MIN = 22;

function fieldProblem(
  name: 'operator' | 'profile' | 'operatorProfile' | 'model',
  value: unknown,
  required: boolean,
): string | undefined {
  if (value === undefined || value === '') return required ? `${name} is missing` : undefined;
  const max = name === 'operator' ? OPERATOR_MAX : PROFILE_MAX;
  if (typeof value !== 'string' || !/^[A-Za-z0-9._:@-]+$/.test(value) || value.length > max) {
    return `${name} ${JSON.stringify(value)}: use 1-${max} letters, digits or . _ : @ -`;
  }
  return undefined;
}

/** Checks one row on its own (not against the registry); the first problem found, or undefined. */
export function importRowProblem(row: ImportRow): ImportRejection | undefined {
  const at = { line: row.line, imei: typeof row.imei === 'string' && row.imei !== '' ? row.imei : undefined };
  const imei = imeiProblem(row.imei);
  if (imei) return { ...at, code: 'registry.invalid_imei', reason: imei, field: 'imei' };
  if (row.imsi !== undefined && row.imsi !== '') {
    const imsi = imsiProblem(row.imsi);
    if (imsi) return { ...at, code: 'registry.invalid_imsi', reason: imsi, field: 'imsi' };
  }
  const operator = fieldProblem('operator', row.operator, true);
  if (operator) return { ...at, code: 'registry.invalid_field', reason: operator, field: 'operator' };
  const profile = fieldProblem('profile', row.profile, false);
  if (profile) return { ...at, code: 'registry.invalid_field', reason: profile, field: 'profile' };
  for (const name of ['operatorProfile', 'model'] as const) {
    const problem = fieldProblem(name, row[name], false);
    if (problem) return { ...at, code: 'registry.invalid_field', reason: problem, field: name };
  }
  if (row.status !== undefined && row.status !== 'enabled' && row.status !== 'disabled') {
    const reason = `status ${JSON.stringify(row.status)}: enabled or disabled`;
    return { ...at, code: 'registry.invalid_field', reason, field: 'status' };
  }
  if (row.secret !== undefined && row.secret !== '') {
    if (
      !/^[A-Za-z0-9_-]+$/.test(row.secret) ||
      row.secret.length < IMPORTED_SECRET_MIN ||
      row.secret.length > SECRET_MAX
    ) {
      return {
        ...at,
        code: 'registry.invalid_field',
        reason: `secret: ${IMPORTED_SECRET_MIN}-${SECRET_MAX} base64url characters`,
        field: 'secret',
      };
    }
  }
  return undefined;
}

/**
 * The record of a new device and its one-time secret (the row's own, or a
 * generated one); only the secret's hash is kept. Outside any transaction:
 * hashing is what keeps the write lock short.
 */
export function prepareImportRow(row: ImportRow, now: number): PreparedImportRow {
  const secret = row.secret || generateDeviceSecret();
  // Assigned one by one, not spread: this runs once a row, and spreads are what a large import's heap grew on.
  const record: DeviceRecordV1 = {
    v: DEVICE_RECORD_VERSION,
    imei: row.imei,
    operator: row.operator,
    status: row.status ?? 'enabled',
    createdAt: now,
    secretHash: hashDeviceSecret(secret),
  };
  if (row.imsi) record.imsi = row.imsi;
  if (row.profile) record.profile = row.profile;
  if (row.operatorProfile) record.operatorProfile = row.operatorProfile;
  if (row.model) record.model = row.model;
  const prepared: PreparedImportRow = { record, secret };
  if (row.line !== undefined) prepared.line = row.line;
  return prepared;
}

function notFound(imei: string): GatewayError {
  return new GatewayError('registry.not_found', `no device with IMEI ${imei}`, { field: 'imei' });
}

export class Registry implements DeviceAuthSource {
  readonly path: string;
  private readonly env: RootDatabase;
  private readonly devices: Database<DeviceRecordV1, string>;
  private readonly admins: Database<AdminUserRecordV1, string>;
  private readonly refs: Database<RefRecord & { v: number }, string[]>;
  /** `<imsi>:<imei>` → true: IMSI prefix search without reading every device. */
  private readonly imsis: Database<boolean, string>;
  private readonly meta: Database<unknown, string>;
  /** [imei, label] → ProvisionedAccountRecord: account credentials an operator set for a device. */
  private readonly accounts: Database<ProvisionedAccountRecord, string[]>;
  /** Audit entries of changes made here, until the admin role relays them to its audit log. */
  readonly auditOutbox: AuditOutbox;
  /** Import jobs: their results, sealed secrets and the rows they created. */
  readonly imports: ImportJobs;
  private readonly now: () => number;
  private readonly pendingLastSeen = new Map<string, number>();
  private readonly flushTimer: NodeJS.Timeout;
  private flushing: Promise<void> = Promise.resolve();
  private closed = false;
  /** Told the IMEIs of committed device changes (the cluster's device_auth publisher). */
  private readonly deviceListeners = new Set<(imeis: string[]) => void>();

  private constructor(path: string, options: RegistryOptions) {
    this.path = path;
    this.now = options.now ?? Date.now;
    this.env = open({ path, maxDbs: 16 });
    this.devices = this.env.openDB<DeviceRecordV1, string>({ name: 'devices' });
    this.admins = this.env.openDB<AdminUserRecordV1, string>({ name: 'admins' });
    this.refs = this.env.openDB<RefRecord & { v: number }, string[]>({ name: 'refdata' });
    this.imsis = this.env.openDB<boolean, string>({ name: 'imsi' });
    this.meta = this.env.openDB<unknown, string>({ name: 'meta' });
    this.accounts = this.env.openDB<ProvisionedAccountRecord, string[]>({ name: 'accounts' });
    this.auditOutbox = new AuditOutbox(this.env.openDB({ name: 'auditOutbox' }), this.now);
    this.imports = new ImportJobs({
      devices: this.devices,
      imsis: this.imsis,
      accounts: this.accounts,
      jobs: this.env.openDB({ name: 'imports' }),
      outbox: this.auditOutbox,
      now: this.now,
      changed: (imeis) => this.devicesChanged(imeis),
    });
    this.flushTimer = setInterval(() => void this.flushLastSeen(), options.lastSeenFlushMs ?? 5000);
    this.flushTimer.unref();
  }

  /** Opens (creating if needed) the registry under `<dataDir>/registry`. */
  static async open(dataDir: string, options: RegistryOptions = {}): Promise<Registry> {
    const path = join(dataDir, 'registry');
    if (options.mustExist && !existsSync(join(path, 'data.mdb'))) {
      throw new GatewayError('registry.not_found', `no registry in ${dataDir} (is --data right?)`, {
        field: 'data',
      });
    }
    mkdirSync(path, { recursive: true });
    const registry = new Registry(path, options);
    await registry.buildImsiIndex();
    await registry.imports.recover();
    return registry;
  }

  /** Once per registry: indexes the IMSIs of devices written before the index existed. */
  private async buildImsiIndex(): Promise<void> {
    if (this.meta.get('imsiIndex') === 1) return;
    await this.env.transaction(() => {
      if (this.meta.get('imsiIndex') === 1) return;
      for (const { key, value } of this.devices.getRange({})) {
        if (value.imsi) this.imsis.put(`${value.imsi}:${key}`, true);
      }
      this.meta.put('imsiIndex', 1);
    });
  }

  /** Devices whose IMSI starts with `prefix`, in IMSI order (then IMEI). */
  *iterateDevicesByImsi(prefix: string): Generator<Device> {
    this.assertOpen();
    for (const key of this.imsis.getKeys({ start: prefix, end: `${prefix}\uffff`, snapshot: true })) {
      const imei = String(key).slice(String(key).indexOf(':') + 1);
      const device = this.getDevice(imei);
      if (device) yield device;
    }
  }

  // ---- devices -----------------------------------------------------------

  /** Provisions a device. The secret is returned once and never stored (only its hash). */
  async addDevice(input: NewDevice, audit?: AuditActor): Promise<{ device: Device; secret: string }> {
    this.assertOpen();
    const problem = importRowProblem({ ...input });
    if (problem) throw new GatewayError(problem.code, problem.reason, { field: problem.field });
    const secret = generateDeviceSecret();
    const record: DeviceRecordV1 = {
      v: DEVICE_RECORD_VERSION,
      imei: input.imei,
      ...(input.imsi ? { imsi: input.imsi } : {}),
      operator: input.operator,
      ...(input.profile ? { profile: input.profile } : {}),
      ...(input.operatorProfile ? { operatorProfile: input.operatorProfile } : {}),
      ...(input.model ? { model: input.model } : {}),
      status: input.status ?? 'enabled',
      createdAt: this.now(),
      secretHash: hashDeviceSecret(secret),
    };
    const added = await this.devices.transaction(() => {
      if (this.devices.doesExist(record.imei)) return false;
      this.devices.put(record.imei, record);
      if (record.imsi) this.imsis.put(`${record.imsi}:${record.imei}`, true);
      if (audit)
        this.auditOutbox.put(
          audit,
          'device.create',
          `device:${record.imei}`,
          undefined,
          deviceAuditView(deviceView(record)),
        );
      return true;
    });
    if (!added) {
      throw new GatewayError('registry.duplicate', `a device with IMEI ${input.imei} already exists`, {
        field: 'imei',
      });
    }
    this.devicesChanged([record.imei]);
    return { device: deviceView(record), secret };
  }

  getDevice(imei: string): Device | undefined {
    this.assertOpen();
    const raw = this.devices.get(imei);
    return raw === undefined ? undefined : deviceView(readDeviceRecord(raw));
  }

  /** Is there a device with this IMEI? (No record is decoded: an import asks once per row.) */
  hasDevice(imei: string): boolean {
    this.assertOpen();
    return this.devices.doesExist(imei);
  }

  /**
   * Checks a device's credentials. Failures carry the code the handset gets:
   * auth.unknown_device, auth.bad_secret, then auth.disabled (status is only
   * revealed to a caller who knows the secret).
   */
  authenticate(imei: string, secret: string): DeviceInfo {
    this.assertOpen();
    const raw = typeof imei === 'string' && imei.length <= 32 ? this.devices.get(imei) : undefined;
    if (raw === undefined) {
      throw new GatewayError('auth.unknown_device', `no device with IMEI ${String(imei).slice(0, 32)}`);
    }
    const record = readDeviceRecord(raw);
    if (
      typeof secret !== 'string' ||
      secret.length > SECRET_MAX ||
      !verifyDeviceSecret(secret, record.secretHash)
    ) {
      throw new GatewayError('auth.bad_secret');
    }
    if (record.status !== 'enabled') throw new GatewayError('auth.disabled');
    this.touchLastSeen(imei);
    return deviceInfo(record, this.profileHeartbeatMs(record));
  }

  /** For token-based hello and resume: the device must still exist and be enabled. */
  lookup(imei: string): DeviceInfo {
    this.assertOpen();
    const raw = typeof imei === 'string' && imei.length <= 32 ? this.devices.get(imei) : undefined;
    if (raw === undefined) throw new GatewayError('auth.unknown_device');
    const record = readDeviceRecord(raw);
    if (record.status !== 'enabled') throw new GatewayError('auth.disabled');
    return deviceInfo(record, this.profileHeartbeatMs(record));
  }

  /**
   * The heartbeat the device's profiles ask for: its service profile's
   * policies.heartbeatMs, else its operator profile's heartbeatMs (the
   * network's); the edge brings it within its bounds (server/edge/heartbeat.ts).
   */
  private profileHeartbeatMs(r: DeviceRecordV1): number | undefined {
    const policies =
      r.profile === undefined ? undefined : this.getRef('service-profiles', r.profile)?.data.policies;
    const fromService = (policies as Record<string, unknown> | undefined)?.heartbeatMs;
    if (Number.isInteger(fromService)) return fromService as number;
    const fromOperator =
      r.operatorProfile === undefined
        ? undefined
        : this.getRef('operator-profiles', r.operatorProfile)?.data.heartbeatMs;
    return Number.isInteger(fromOperator) ? (fromOperator as number) : undefined;
  }

  async setStatus(imei: string, status: DeviceStatus, audit?: AuditActor): Promise<Device> {
    if (status !== 'enabled' && status !== 'disabled') {
      throw new GatewayError(
        'registry.invalid_field',
        `status ${JSON.stringify(status)}: enabled or disabled`,
        {
          field: 'status',
        },
      );
    }
    const action = status === 'enabled' ? 'device.enable' : 'device.disable';
    return this.update(imei, (r) => ({ ...r, status }), audit && { who: audit, action });
  }

  /** Replaces the secret (the old one stops working at once); the new one is returned once. */
  async resetSecret(imei: string, audit?: AuditActor): Promise<{ device: Device; secret: string }> {
    const secret = generateDeviceSecret();
    const device = await this.update(
      imei,
      (r) => ({ ...r, secretHash: hashDeviceSecret(secret) }),
      audit && { who: audit, action: 'device.reset_secret', noRecords: true },
    );
    return { device, secret };
  }

  async removeDevice(imei: string, audit?: AuditActor): Promise<void> {
    this.assertOpen();
    const removed = await this.devices.transaction(() => {
      const raw = this.devices.get(imei);
      if (raw === undefined) return false;
      if (raw.imsi) this.imsis.remove(`${raw.imsi}:${imei}`);
      this.devices.remove(imei);
      for (const key of this.accounts.getKeys({ start: [imei], end: [imei, '\uffff'] })) {
        this.accounts.remove(key);
      }
      if (audit)
        this.auditOutbox.put(
          audit,
          'device.remove',
          `device:${imei}`,
          deviceAuditView(deviceView(readDeviceRecord(raw))),
        );
      return true;
    });
    if (!removed) throw notFound(imei);
    this.pendingLastSeen.delete(imei);
    this.devicesChanged([imei]);
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
    const prefix = options.prefix ?? '';
    // IMEIs are digits, and ':' sorts right after '9': [prefix, prefix + ':') is the prefix range.
    let start: string | undefined = prefix === '' ? undefined : prefix;
    if (options.after !== undefined && (start === undefined || options.after > start)) start = options.after;
    const end = prefix === '' ? undefined : prefix + ':';
    for (const { key, value } of this.devices.getRange({ start, end, snapshot: true })) {
      if (options.after !== undefined && key <= options.after) continue;
      const record = readDeviceRecord(value);
      if (options.operator !== undefined && record.operator !== options.operator) continue;
      if (options.status !== undefined && record.status !== options.status) continue;
      yield deviceView(record);
    }
  }

  /** The number of devices from the database header: O(1), where countDevices walks every key. */
  deviceTotal(): number {
    this.assertOpen();
    return (this.devices.getStats() as { entryCount: number }).entryCount;
  }

  countDevices(): number {
    this.assertOpen();
    return this.devices.getKeysCount();
  }

  /**
   * Writes many devices in ONE lmdb transaction: a crash (kill -9) at any point
   * leaves either every row of the call or none of it. For rows held in
   * memory; files (the CLI, the API) import through device-import.ts, in
   * batches as a job, since one transaction holds every dirty page in memory.
   *
   * Rows are checked on their own first, then against the registry and each
   * other inside the transaction (another process may have added one since the
   * caller validated). 'all-or-nothing' writes nothing when any row is
   * rejected; 'valid-only' writes the rows that pass.
   */
  async importDevices(
    rows: ImportRow[],
    options: { mode: ImportMode; onProgress?: (done: number, total: number) => void },
  ): Promise<ImportResult> {
    this.assertOpen();
    const { mode } = options;
    const rejected: ImportRejection[] = [];
    const candidates: ImportRow[] = [];
    const seen = new Map<string, number | undefined>();
    for (const row of rows) {
      const problem = importRowProblem(row);
      if (problem) rejected.push(problem);
      else if (seen.has(row.imei)) {
        const first = seen.get(row.imei);
        rejected.push({
          line: row.line,
          imei: row.imei,
          code: 'registry.duplicate',
          reason:
            `IMEI ${row.imei} appears twice in the import` +
            (first === undefined ? '' : ` (first on line ${first})`),
        });
      } else {
        seen.set(row.imei, row.line);
        candidates.push(row);
      }
    }
    if (mode === 'all-or-nothing' && rejected.length > 0) {
      return { mode, total: rows.length, written: 0, rejected: sortRejections(rejected), secrets: [] };
    }
    // Secrets and hashes are computed outside the transaction to keep the write lock short.
    const now = this.now();
    const prepared = candidates.map((row) => ({ row, ...prepareImportRow(row, now) }));
    const secrets: Array<{ imei: string; secret: string }> = [];
    const step = Math.max(1, Math.floor(prepared.length / 100));
    await this.devices.transaction(() => {
      const existing: ImportRejection[] = [];
      for (const p of prepared) {
        if (this.devices.doesExist(p.record.imei)) {
          existing.push({
            line: p.row.line,
            imei: p.record.imei,
            code: 'registry.duplicate',
            reason: `IMEI ${p.record.imei} is already in the registry`,
          });
        }
      }
      rejected.push(...existing);
      // Nothing was written yet, so returning here leaves the transaction empty.
      if (mode === 'all-or-nothing' && existing.length > 0) return;
      const dup = new Set(existing.map((r) => r.imei));
      let done = 0;
      for (const p of prepared) {
        if (!dup.has(p.record.imei)) {
          this.devices.put(p.record.imei, p.record);
          if (p.record.imsi) this.imsis.put(`${p.record.imsi}:${p.record.imei}`, true);
          secrets.push({ imei: p.record.imei, secret: p.secret });
        }
        if (++done % step === 0) options.onProgress?.(done, prepared.length);
      }
    });
    options.onProgress?.(prepared.length, prepared.length);
    this.devicesChanged(secrets.map((x) => x.imei));
    return { mode, total: rows.length, written: secrets.length, rejected: sortRejections(rejected), secrets };
  }

  /**
   * Notes that a device was seen. Cheap: kept in memory and written in one
   * transaction every few seconds (and on close), because doing a write per
   * authentication would make the registry the bottleneck of a reconnect storm.
   */
  touchLastSeen(imei: string, at: number = this.now()): void {
    const prev = this.pendingLastSeen.get(imei);
    if (prev === undefined || at > prev) this.pendingLastSeen.set(imei, at);
  }

  /** Writes pending last-seen times now. */
  flushLastSeen(): Promise<void> {
    if (this.pendingLastSeen.size === 0 || this.closed) return this.flushing;
    const batch = new Map(this.pendingLastSeen);
    this.pendingLastSeen.clear();
    this.flushing = this.flushing
      .then(() =>
        this.devices.transaction(() => {
          for (const [imei, at] of batch) {
            const raw = this.devices.get(imei);
            if (raw === undefined) continue;
            const record = readDeviceRecord(raw);
            if ((record.lastSeenAt ?? 0) >= at) continue;
            this.devices.put(imei, { ...record, v: DEVICE_RECORD_VERSION, lastSeenAt: at });
          }
        }),
      )
      .then(
        () => undefined,
        () => undefined,
      );
    return this.flushing;
  }

  /** Changes the fields given (checked like a new row); the status too. */
  async updateDevice(imei: string, patch: DevicePatch): Promise<Device> {
    const current = this.getDevice(imei);
    if (current === undefined) throw notFound(imei);
    const merged: ImportRow = { imei, operator: patch.operator ?? current.operator };
    for (const key of ['imsi', 'profile', 'operatorProfile', 'model'] as const) {
      const value = patch[key] === undefined ? current[key] : (patch[key] ?? undefined);
      if (value !== undefined) merged[key] = value;
    }
    if (patch.status !== undefined) merged.status = patch.status;
    const problem = importRowProblem(merged);
    if (problem) throw new GatewayError(problem.code, problem.reason, { field: problem.field });
    return this.update(imei, (r) => {
      const next: DeviceRecordV1 = { ...r, operator: merged.operator };
      for (const key of ['imsi', 'profile', 'operatorProfile', 'model'] as const) {
        if (merged[key] === undefined) delete next[key];
        else next[key] = merged[key];
      }
      if (merged.status !== undefined) next.status = merged.status;
      return next;
    });
  }

  // ---- reference data (the admin API uses these) -------------------------

  listRefs(kind: string): RefRecord[] {
    this.assertOpen();
    const out: RefRecord[] = [];
    for (const { value } of this.refs.getRange({ start: [kind], end: [kind, '\uffff'], snapshot: true })) {
      out.push(refView(value));
    }
    return out;
  }

  getRef(kind: string, id: string): RefRecord | undefined {
    this.assertOpen();
    const raw = this.refs.get([kind, id]);
    return raw === undefined ? undefined : refView(raw);
  }

  /**
   * Creates (mode 'create': registry.duplicate if it exists) or replaces (mode
   * 'replace': registry.not_found if absent; when `revision` is given it must be
   * the stored one, else the answer is undefined and nothing is written).
   * Returns the record before and after.
   */
  async putRef(
    kind: string,
    id: string,
    data: Record<string, unknown>,
    options: { mode: 'create' | 'replace'; revision?: number },
  ): Promise<{ before?: RefRecord; after: RefRecord } | undefined> {
    this.assertOpen();
    const now = this.now();
    const result = await this.refs.transaction(() => {
      const raw = this.refs.get([kind, id]);
      const before = raw === undefined ? undefined : refView(raw);
      if (options.mode === 'create' && before) return 'exists' as const;
      if (options.mode === 'replace' && !before) return 'missing' as const;
      if (options.revision !== undefined && before && before.revision !== options.revision) return undefined;
      const after: RefRecord = {
        kind,
        id,
        revision: (before?.revision ?? 0) + 1,
        createdAt: before?.createdAt ?? now,
        updatedAt: now,
        data,
      };
      this.refs.put([kind, id], { ...after, v: REF_RECORD_VERSION });
      return before ? { before, after } : { after };
    });
    if (result === 'exists')
      throw new GatewayError('registry.duplicate', `${kind} ${id} already exists`, { field: 'id' });
    if (result === 'missing')
      throw new GatewayError('registry.not_found', `no ${kind} ${id}`, { field: 'id' });
    return result;
  }

  /** Removes one record; returns what it was. */
  async removeRef(kind: string, id: string): Promise<RefRecord> {
    this.assertOpen();
    const before = await this.refs.transaction(() => {
      const raw = this.refs.get([kind, id]);
      if (raw === undefined) return undefined;
      this.refs.remove([kind, id]);
      return refView(raw);
    });
    if (!before) throw new GatewayError('registry.not_found', `no ${kind} ${id}`, { field: 'id' });
    return before;
  }

  // ---- provisioned accounts (operator-set credentials; the admin API and CLI use these) ----

  /** The device's provisioned accounts, by label (the secret stays sealed). */
  listDeviceAccounts(imei: string): ProvisionedAccount[] {
    this.assertOpen();
    const out: ProvisionedAccount[] = [];
    for (const { value } of this.accounts.getRange({
      start: [imei],
      end: [imei, '\uffff'],
      snapshot: true,
    })) {
      out.push(provisionedView(value));
    }
    return out;
  }

  getDeviceAccount(imei: string, label: string): ProvisionedAccount | undefined {
    this.assertOpen();
    const raw = this.accounts.get([imei, label]);
    return raw === undefined ? undefined : provisionedView(raw);
  }

  /**
   * Creates or replaces one provisioned account of an existing device; the
   * caller has sealed the secret. Returns the record before (if any) and after.
   */
  async putDeviceAccount(
    imei: string,
    account: Omit<ProvisionedAccount, 'createdAt' | 'updatedAt'>,
    audit?: AuditActor,
  ): Promise<{ before?: ProvisionedAccount; after: ProvisionedAccount }> {
    this.assertOpen();
    const now = this.now();
    const result = await this.accounts.transaction(() => {
      if (!this.devices.doesExist(imei)) return undefined;
      const raw = this.accounts.get([imei, account.label]);
      const before = raw === undefined ? undefined : provisionedView(raw);
      const after: ProvisionedAccount = { ...account, createdAt: before?.createdAt ?? now, updatedAt: now };
      this.accounts.put([imei, account.label], { ...after, v: PROVISIONED_ACCOUNT_VERSION });
      if (audit)
        this.auditOutbox.put(
          audit,
          before ? 'device.account.update' : 'device.account.create',
          `device:${imei}/account:${account.label}`,
          before && accountAuditView(before),
          accountAuditView(after),
        );
      return before ? { before, after } : { after };
    });
    if (!result) throw notFound(imei);
    return result;
  }

  /** Removes one provisioned account; returns what it was (registry.not_found when absent). */
  async removeDeviceAccount(imei: string, label: string, audit?: AuditActor): Promise<ProvisionedAccount> {
    this.assertOpen();
    const before = await this.accounts.transaction(() => {
      const raw = this.accounts.get([imei, label]);
      if (raw === undefined) return undefined;
      this.accounts.remove([imei, label]);
      const view = provisionedView(raw);
      if (audit)
        this.auditOutbox.put(
          audit,
          'device.account.remove',
          `device:${imei}/account:${label}`,
          accountAuditView(view),
        );
      return view;
    });
    if (!before)
      throw new GatewayError('registry.not_found', `device ${imei} has no account ${label}`, {
        field: 'label',
      });
    return before;
  }

  // ---- admin users (the admin API uses these) ---------------------------

  async addAdminUser(
    input: { name: string; role: AdminRole; password: string },
    audit?: AuditActor,
  ): Promise<AdminUser> {
    this.assertOpen();
    if (!/^[A-Za-z0-9._@-]{1,64}$/.test(input.name ?? '')) {
      throw new GatewayError('registry.invalid_field', 'name: 1-64 letters, digits or . _ @ -', {
        field: 'name',
      });
    }
    if (!['admin', 'operator', 'viewer'].includes(input.role)) {
      throw new GatewayError('registry.invalid_field', 'role: admin, operator or viewer', { field: 'role' });
    }
    if (typeof input.password !== 'string' || input.password.length < 10 || input.password.length > 1024) {
      throw new GatewayError('registry.invalid_field', 'password: at least 10 characters', {
        field: 'password',
      });
    }
    const record: AdminUserRecordV1 = {
      v: ADMIN_USER_RECORD_VERSION,
      name: input.name,
      role: input.role,
      passwordHash: await hashPassword(input.password),
      createdAt: this.now(),
    };
    const added = await this.admins.transaction(() => {
      if (this.admins.doesExist(record.name)) return false;
      this.admins.put(record.name, record);
      if (audit)
        this.auditOutbox.put(audit, 'user.create', `user:${record.name}`, undefined, adminView(record));
      return true;
    });
    if (!added) throw new GatewayError('registry.duplicate', `an admin user ${input.name} already exists`);
    return adminView(record);
  }

  getAdminUser(name: string): AdminUser | undefined {
    this.assertOpen();
    const raw = this.admins.get(name);
    return raw === undefined ? undefined : adminView(readAdminUserRecord(raw));
  }

  /**
   * The user and their token epoch: a number that grows at every password or
   * role change, carried in their tokens, so that older tokens stop working.
   */
  getAdminAuth(name: string): { user: AdminUser; tokenEpoch: number } | undefined {
    this.assertOpen();
    const raw = this.admins.get(name);
    if (raw === undefined) return undefined;
    const record = readAdminUserRecord(raw);
    return { user: adminView(record), tokenEpoch: record.tokenEpoch ?? 0 };
  }

  listAdminUsers(): AdminUser[] {
    this.assertOpen();
    return [...this.admins.getRange({ snapshot: true })].map(({ value }) =>
      adminView(readAdminUserRecord(value)),
    );
  }

  /** The user when name and password match, else undefined (same answer for unknown name and bad password). */
  async verifyAdminPassword(name: string, password: string): Promise<AdminUser | undefined> {
    this.assertOpen();
    const raw = this.admins.get(name);
    if (raw === undefined) {
      // Spend the same time as a real check so that timing does not reveal which names exist.
      await verifyPassword(password, DUMMY_HASH);
      return undefined;
    }
    const record = readAdminUserRecord(raw);
    return (await verifyPassword(password, record.passwordHash)) ? adminView(record) : undefined;
  }

  /** Sets a password; the user's tokens stop working (their epoch moves on). */
  async setAdminPassword(name: string, password: string, audit?: AuditActor): Promise<void> {
    if (typeof password !== 'string' || password.length < 10 || password.length > 1024) {
      throw new GatewayError('registry.invalid_field', 'password: at least 10 characters', {
        field: 'password',
      });
    }
    const passwordHash = await hashPassword(password);
    const ok = await this.admins.transaction(() => {
      const raw = this.admins.get(name);
      if (raw === undefined) return false;
      const record = readAdminUserRecord(raw);
      this.admins.put(name, {
        ...record,
        v: ADMIN_USER_RECORD_VERSION,
        passwordHash,
        tokenEpoch: (record.tokenEpoch ?? 0) + 1,
      });
      if (audit) this.auditOutbox.put(audit, 'user.password', `user:${name}`);
      return true;
    });
    if (!ok) throw new GatewayError('registry.not_found', `no admin user ${name}`);
  }

  /** Gives a user another role; their tokens stop working (they log in again, with the new role). */
  async setAdminRole(
    name: string,
    role: AdminRole,
    audit?: AuditActor,
  ): Promise<{ before: AdminUser; after: AdminUser }> {
    this.assertOpen();
    if (!['admin', 'operator', 'viewer'].includes(role)) {
      throw new GatewayError('registry.invalid_field', 'role: admin, operator or viewer', { field: 'role' });
    }
    const result = await this.admins.transaction(() => {
      const raw = this.admins.get(name);
      if (raw === undefined) return undefined;
      const record = readAdminUserRecord(raw);
      const updated: AdminUserRecordV1 = {
        ...record,
        v: ADMIN_USER_RECORD_VERSION,
        role,
        tokenEpoch: (record.tokenEpoch ?? 0) + 1,
      };
      this.admins.put(name, updated);
      const change = { before: adminView(record), after: adminView(updated) };
      if (audit) this.auditOutbox.put(audit, 'user.role', `user:${name}`, change.before, change.after);
      return change;
    });
    if (result === undefined) throw new GatewayError('registry.not_found', `no admin user ${name}`);
    return result;
  }

  async removeAdminUser(name: string, audit?: AuditActor): Promise<void> {
    const ok = await this.admins.transaction(() => {
      const raw = this.admins.get(name);
      if (raw === undefined) return false;
      this.admins.remove(name);
      if (audit)
        this.auditOutbox.put(audit, 'user.remove', `user:${name}`, adminView(readAdminUserRecord(raw)));
      return true;
    });
    if (!ok) throw new GatewayError('registry.not_found', `no admin user ${name}`);
  }

  // ---- whole-registry transfer (registry-transfer.ts, `mmgw registry export|import`) ----

  /** Every record as stored (versioned), table by table in key order. */
  *exportRecords(): Generator<TransferRecord> {
    this.assertOpen();
    for (const { key, value } of this.devices.getRange({ snapshot: true })) {
      yield { table: 'devices', key, value: readDeviceRecord(value) };
    }
    for (const { key, value } of this.admins.getRange({ snapshot: true })) {
      yield { table: 'admins', key, value: readAdminUserRecord(value) };
    }
    for (const { key, value } of this.refs.getRange({ snapshot: true })) {
      yield { table: 'refs', key: `${key[0]}/${key[1]}`, value };
    }
    for (const { key, value } of this.accounts.getRange({ snapshot: true })) {
      yield { table: 'accounts', key: `${key[0]}/${key[1]}`, value };
    }
  }

  /**
   * Writes checked records (registry-transfer.ts parseExport) in ONE
   * transaction: all or nothing. A key that exists already refuses the whole
   * import (registry.duplicate). The IMSI index follows the devices.
   */
  async importRecords(records: TransferRecord[]): Promise<{ written: number }> {
    this.assertOpen();
    const split = (key: string) => {
      const at = key.indexOf('/');
      return [key.slice(0, at), key.slice(at + 1)];
    };
    const existing = await this.devices.transaction(() => {
      for (const r of records) {
        const taken =
          r.table === 'devices'
            ? this.devices.doesExist(r.key)
            : r.table === 'admins'
              ? this.admins.doesExist(r.key)
              : r.table === 'refs'
                ? this.refs.doesExist(split(r.key))
                : this.accounts.doesExist(split(r.key));
        if (taken) return r;
      }
      for (const r of records) {
        if (r.table === 'devices') {
          this.devices.put(r.key, r.value);
          if (r.value.imsi) this.imsis.put(`${r.value.imsi}:${r.key}`, true);
        } else if (r.table === 'admins') this.admins.put(r.key, r.value);
        else if (r.table === 'refs') this.refs.put(split(r.key), r.value);
        else this.accounts.put(split(r.key), r.value);
      }
      return undefined;
    });
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
    const raw = this.devices.get(imei);
    if (raw === undefined) return undefined;
    const record = readDeviceRecord(raw);
    return deviceAuthRecord(record, deviceKeyEpoch(record), this.profileHeartbeatMs(record));
  }

  *allDeviceAuth(): Generator<DeviceAuthFields> {
    this.assertOpen();
    for (const { value } of this.devices.getRange({ snapshot: true })) {
      const record = readDeviceRecord(value);
      const { keyEpoch: _k, ...fields } = deviceAuthRecord(record, '', this.profileHeartbeatMs(record));
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
    clearInterval(this.flushTimer);
    await this.flushLastSeen();
    this.closed = true;
    await this.env.close();
  }

  private assertOpen(): void {
    if (this.closed) throw new GatewayError('internal', 'the registry is closed');
  }

  private async update(
    imei: string,
    change: (r: DeviceRecordV1) => DeviceRecordV1,
    audit?: { who: AuditActor; action: string; noRecords?: boolean },
  ): Promise<Device> {
    this.assertOpen();
    assertImei(imei);
    const updated = await this.devices.transaction(() => {
      const raw = this.devices.get(imei);
      if (raw === undefined) return undefined;
      const before = readDeviceRecord(raw);
      const record = { ...change(before), v: DEVICE_RECORD_VERSION } as DeviceRecordV1;
      this.devices.put(imei, record);
      if (raw.imsi !== record.imsi) {
        if (raw.imsi) this.imsis.remove(`${raw.imsi}:${imei}`);
        if (record.imsi) this.imsis.put(`${record.imsi}:${imei}`, true);
      }
      if (audit)
        this.auditOutbox.put(
          audit.who,
          audit.action,
          `device:${imei}`,
          audit.noRecords ? undefined : deviceAuditView(deviceView(before)),
          audit.noRecords ? undefined : deviceAuditView(deviceView(record)),
        );
      return record;
    });
    if (updated === undefined) throw notFound(imei);
    this.devicesChanged([imei]);
    return deviceView(updated);
  }
}

/** A fixed scrypt hash of a random string, for equal-time answers to unknown names. */
const DUMMY_HASH = 'scrypt$32768$8$1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA';

/** Changes with the secret: tokens issued under an older secret are refused. */
export function deviceKeyEpoch(r: DeviceRecordV1): string {
  return createHash('sha256').update(r.secretHash).digest('base64url').slice(0, 12);
}

function deviceInfo(r: DeviceRecordV1, heartbeatMs: number | undefined): DeviceInfo {
  const info: DeviceInfo = {
    imei: r.imei,
    operator: r.operator,
    status: r.status,
    keyEpoch: deviceKeyEpoch(r),
  };
  if (r.profile !== undefined) info.profile = r.profile;
  if (heartbeatMs !== undefined) info.heartbeatMs = heartbeatMs;
  return info;
}

export const PROVISIONED_ACCOUNT_VERSION = 1;
type ProvisionedAccountRecord = ProvisionedAccount & { v: number };

function provisionedView(raw: ProvisionedAccountRecord): ProvisionedAccount {
  // v1 is the only version so far; the sealed secret is opaque here.
  const { v: _v, ...rest } = raw;
  return rest;
}

/** What the audit log keeps of a provisioned account: never its sealed secret. */
function accountAuditView(a: ProvisionedAccount): Omit<ProvisionedAccount, 'secret'> {
  const { secret: _secret, ...rest } = a;
  return rest;
}

function refView(raw: RefRecord & { v?: number }): RefRecord {
  // v1 is the only version so far; a newer release only adds fields, which are kept in data.
  return {
    kind: raw.kind,
    id: raw.id,
    revision: raw.revision,
    createdAt: raw.createdAt,
    updatedAt: raw.updatedAt,
    data: raw.data ?? {},
  };
}

function adminView(r: AdminUserRecordV1): AdminUser {
  return { name: r.name, role: r.role, createdAt: r.createdAt };
}

function sortRejections(list: ImportRejection[]): ImportRejection[] {
  return list.sort((a, b) => (a.line ?? 0) - (b.line ?? 0));
}

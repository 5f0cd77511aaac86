import { GatewayError } from '../../device-protocol/errors.ts';

/**
 * Versioned records. Every stored record carries `v`. A reader upgrades what
 * an older release wrote, one version step at a time, so that nodes of two
 * releases can share a data directory (or a replicated KV) during a rolling
 * upgrade. Writers always write the current version.
 *
 * Rule for a new version: bump CURRENT, add `upgrades[old]` (old → old+1),
 * keep every older step. Never edit an existing step.
 */

export type DeviceStatus = 'enabled' | 'disabled';
export type AdminRole = 'admin' | 'operator' | 'viewer';

/** A device as the rest of the system sees it (no secret hash). */
export interface Device {
  imei: string;
  imsi?: string;
  operator: string;
  /** The service profile (the admin API calls it serviceProfile). */
  profile?: string;
  /** Operator profile id (admin reference data). */
  operatorProfile?: string;
  /** Capability profile id: the device model (admin reference data). */
  model?: string;
  status: DeviceStatus;
  /** Epoch milliseconds. */
  createdAt: number;
  /** Epoch milliseconds of the last successful authentication (updated in batches). */
  lastSeenAt?: number;
}

export interface DeviceRecordV1 extends Device {
  v: 1;
  /** base64url SHA-256 of the device secret. */
  secretHash: string;
}

export interface AdminUserRecordV1 {
  v: 1;
  name: string;
  role: AdminRole;
  /** `scrypt$N$r$p$salt$hash` (salt and hash base64url); never the password. */
  passwordHash: string;
  createdAt: number;
  /**
   * Grows at every password or role change; tokens carry the epoch they were
   * issued in, and only the current one is accepted. Absent (0) in records
   * written before it existed: an optional field read as 0, so no new version.
   */
  tokenEpoch?: number;
}

export const DEVICE_RECORD_VERSION = 1;
export const ADMIN_USER_RECORD_VERSION = 1;

type Upgrade = (record: Record<string, unknown>) => Record<string, unknown>;

/**
 * v0: what the first prototype wrote, before records carried `v` at all. Same
 * fields; `status` could be absent (every device was enabled then).
 */
const deviceUpgrades: Record<number, Upgrade> = {
  0: (r) => ({ ...r, v: 1, status: r.status === 'disabled' ? 'disabled' : 'enabled' }),
};

/** v0: admin users without `v` (same fields). */
const adminUserUpgrades: Record<number, Upgrade> = {
  0: (r) => ({ ...r, v: 1, createdAt: typeof r.createdAt === 'number' ? r.createdAt : 0 }),
};

function upgrade(
  kind: string,
  raw: unknown,
  current: number,
  steps: Record<number, Upgrade>,
): Record<string, unknown> {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new GatewayError('internal', `${kind} record is not an object`);
  }
  let record = raw as Record<string, unknown>;
  const stored = record.v === undefined ? 0 : record.v;
  if (typeof stored !== 'number' || !Number.isInteger(stored) || stored < 0) {
    throw new GatewayError('internal', `${kind} record has a bad version ${JSON.stringify(record.v)}`);
  }
  let v: number = stored;
  // A newer release wrote it. Versions only ever add fields, so the fields we
  // know are still right: read them and leave the rest alone.
  if (v > current) return record;
  while (v < current) {
    const step = steps[v];
    if (!step) throw new GatewayError('internal', `${kind} record v${v} has no upgrade path`);
    record = step(record);
    v = record.v as number;
  }
  return record;
}

export function readDeviceRecord(raw: unknown): DeviceRecordV1 {
  const r = upgrade('device', raw, DEVICE_RECORD_VERSION, deviceUpgrades);
  if (typeof r.imei !== 'string' || typeof r.operator !== 'string' || typeof r.secretHash !== 'string') {
    throw new GatewayError('internal', 'device record lacks imei, operator or secretHash');
  }
  return r as unknown as DeviceRecordV1;
}

export function readAdminUserRecord(raw: unknown): AdminUserRecordV1 {
  const r = upgrade('admin user', raw, ADMIN_USER_RECORD_VERSION, adminUserUpgrades);
  if (typeof r.name !== 'string' || typeof r.passwordHash !== 'string') {
    throw new GatewayError('internal', 'admin user record lacks name or passwordHash');
  }
  return r as unknown as AdminUserRecordV1;
}

/** The public view of a device record: everything but the secret hash and the version. */
export function deviceView(r: DeviceRecordV1): Device {
  const d: Device = { imei: r.imei, operator: r.operator, status: r.status, createdAt: r.createdAt };
  if (r.imsi !== undefined) d.imsi = r.imsi;
  if (r.profile !== undefined) d.profile = r.profile;
  if (r.operatorProfile !== undefined) d.operatorProfile = r.operatorProfile;
  if (r.model !== undefined) d.model = r.model;
  if (r.lastSeenAt !== undefined) d.lastSeenAt = r.lastSeenAt;
  return d;
}

/** Whether two device records differ in nothing but lastSeenAt (records are flat). */
export function onlyLastSeenDiffers(a: DeviceRecordV1, b: DeviceRecordV1): boolean {
  const ka = Object.keys(a) as (keyof DeviceRecordV1)[];
  const kb = Object.keys(b) as (keyof DeviceRecordV1)[];
  const changed = (k: keyof DeviceRecordV1) => k !== 'lastSeenAt' && a[k] !== b[k];
  return !ka.some(changed) && !kb.some(changed);
}

/**
 * Moving a whole registry between backends: `mmgw registry export` writes
 * JSON lines, `mmgw registry import` reads them into an lmdb registry (single
 * node) or into the shared-state tables of a NATS cluster.
 *
 * Format (REGISTRY_EXPORT_FORMAT, version 1): a header line
 * `{"format":"mmgw-registry","v":1,"exportedAt":…}`, then one line per record
 * `{"table":…,"key":…,"value":…}` with the record as stored, its own `v`
 * included. Tables: devices (key IMEI), admins (name), refs (`kind/id`),
 * accounts (`imei/label`; the secret stays sealed under the credentials key,
 * which must be the same on the importing side). Not exported: the IMSI index
 * (rebuilt from devices), audit outbox and import jobs (node-local, transient).
 *
 * The file is untrusted: every line is checked by the same readers the
 * registry uses, which upgrade records an older release wrote; the first bad
 * line refuses the import (registry.bad_record, naming the line) before
 * anything is written. Records are written in the current version.
 */
import { GatewayError } from '../../device-protocol/errors.ts';
import { DEVICE_AUTH_RECORD_VERSION, type DeviceAuthRecordV1, openDeviceAuthTable } from './device-auth.ts';
import {
  ADMIN_USER_RECORD_VERSION,
  type AdminUserRecordV1,
  DEVICE_RECORD_VERSION,
  type DeviceRecordV1,
  readAdminUserRecord,
  readDeviceRecord,
} from './records.ts';
import { deviceKeyEpoch } from './device-credentials.ts';
import { PROVISIONED_ACCOUNT_VERSION, type ProvisionedAccountRecord } from './provisioned-accounts.ts';
import { REF_RECORD_VERSION, type StoredRef } from './ref-store.ts';
import { modify, type SharedState, type SharedTable } from './shared/table.ts';

export const REGISTRY_EXPORT_FORMAT = 'mmgw-registry';
export const REGISTRY_EXPORT_VERSION = 1;

export type TransferTable = 'devices' | 'admins' | 'refs' | 'accounts';
export const TRANSFER_TABLES: readonly TransferTable[] = ['devices', 'admins', 'refs', 'accounts'];

export type { StoredRef } from './ref-store.ts';

export type TransferRecord =
  | { table: 'devices'; key: string; value: DeviceRecordV1 }
  | { table: 'admins'; key: string; value: AdminUserRecordV1 }
  | { table: 'refs'; key: string; value: StoredRef }
  | { table: 'accounts'; key: string; value: ProvisionedAccountRecord };

export function exportHeader(now: number): string {
  return JSON.stringify({ format: REGISTRY_EXPORT_FORMAT, v: REGISTRY_EXPORT_VERSION, exportedAt: now });
}

export function exportLine(r: TransferRecord): string {
  return JSON.stringify({ table: r.table, key: r.key, value: r.value });
}

function bad(line: number, why: string, cause?: unknown): GatewayError {
  return new GatewayError('registry.bad_record', `line ${line}: ${why}`, {
    field: 'line',
    ...(cause === undefined ? {} : { cause }),
  });
}

function isObject(x: unknown): x is Record<string, unknown> {
  return x !== null && typeof x === 'object' && !Array.isArray(x);
}

/** A ref record of any version we know (v1 is the only one; later ones only add fields). */
export function readRefRecord(raw: unknown): StoredRef {
  if (
    !isObject(raw) ||
    typeof raw.kind !== 'string' ||
    typeof raw.id !== 'string' ||
    typeof raw.revision !== 'number' ||
    typeof raw.createdAt !== 'number' ||
    typeof raw.updatedAt !== 'number' ||
    (raw.data !== undefined && !isObject(raw.data))
  ) {
    throw new GatewayError('registry.bad_record', 'reference record lacks kind, id, revision or times');
  }
  return {
    v: REF_RECORD_VERSION,
    kind: raw.kind,
    id: raw.id,
    revision: raw.revision,
    createdAt: raw.createdAt,
    updatedAt: raw.updatedAt,
    data: (raw.data as Record<string, unknown> | undefined) ?? {},
  };
}

export function readAccountRecord(raw: unknown): ProvisionedAccountRecord {
  if (
    !isObject(raw) ||
    typeof raw.label !== 'string' ||
    (raw.service !== 'mail' && raw.service !== 'im') ||
    typeof raw.user !== 'string' ||
    typeof raw.secret !== 'string' ||
    typeof raw.createdAt !== 'number' ||
    typeof raw.updatedAt !== 'number' ||
    (raw.address !== undefined && typeof raw.address !== 'string')
  ) {
    throw new GatewayError(
      'registry.bad_record',
      'account record lacks label, service, user, secret or times',
    );
  }
  const out: ProvisionedAccountRecord = {
    v: PROVISIONED_ACCOUNT_VERSION,
    label: raw.label,
    service: raw.service,
    user: raw.user,
    secret: raw.secret,
    createdAt: raw.createdAt,
    updatedAt: raw.updatedAt,
  };
  if (raw.address !== undefined) out.address = raw.address as string;
  return out;
}

/** Checks one record line's value by its table, upgraded to the current version; the key must match it. */
export function readTransferRecord(table: unknown, key: unknown, value: unknown): TransferRecord {
  if (typeof key !== 'string' || key.length === 0 || key.length > 512) {
    throw new GatewayError('registry.bad_record', 'key: 1-512 characters');
  }
  const expect = (want: string) => {
    if (key !== want)
      throw new GatewayError('registry.bad_record', `key ${key} does not match the record (${want})`);
  };
  switch (table) {
    case 'devices': {
      const r = { ...readDeviceRecord(value), v: DEVICE_RECORD_VERSION } as DeviceRecordV1;
      expect(r.imei);
      return { table, key, value: r };
    }
    case 'admins': {
      const r = { ...readAdminUserRecord(value), v: ADMIN_USER_RECORD_VERSION } as AdminUserRecordV1;
      expect(r.name);
      return { table, key, value: r };
    }
    case 'refs': {
      const r = readRefRecord(value);
      expect(`${r.kind}/${r.id}`);
      return { table, key, value: r };
    }
    case 'accounts': {
      const r = readAccountRecord(value);
      if (!key.endsWith(`/${r.label}`))
        throw new GatewayError('registry.bad_record', `key ${key} does not end in /${r.label}`);
      return { table, key, value: r };
    }
    default:
      throw new GatewayError('registry.bad_record', `unknown table ${JSON.stringify(table)}`);
  }
}

/** Parses a whole export; throws registry.bad_record naming the first bad line. */
export function parseExport(text: string): TransferRecord[] {
  const lines = text.split('\n');
  let header: unknown;
  try {
    header = JSON.parse(lines[0] ?? '');
  } catch (err) {
    throw bad(1, 'not a registry export (no header)', err);
  }
  if (!isObject(header) || header.format !== REGISTRY_EXPORT_FORMAT) throw bad(1, 'not a registry export');
  if (typeof header.v !== 'number' || header.v > REGISTRY_EXPORT_VERSION) {
    throw bad(1, `export format version ${JSON.stringify(header.v)} is newer than this release reads`);
  }
  const out: TransferRecord[] = [];
  const seen = new Set<string>();
  for (let i = 1; i < lines.length; i++) {
    const text = lines[i]!;
    if (text.trim() === '') continue;
    let line: unknown;
    try {
      line = JSON.parse(text);
    } catch (err) {
      throw bad(i + 1, 'not JSON', err);
    }
    if (!isObject(line)) throw bad(i + 1, 'not an object');
    let record: TransferRecord;
    try {
      record = readTransferRecord(line.table, line.key, line.value);
    } catch (err) {
      throw bad(i + 1, err instanceof Error ? err.message : String(err), err);
    }
    const id = `${record.table}\u0000${record.key}`;
    if (seen.has(id)) throw bad(i + 1, `${record.table} ${record.key} appears twice`);
    seen.add(id);
    out.push(record);
  }
  return out;
}

// ---- the cluster side: shared-state tables ------------------------------------------

/** The shared-state table of each transfer table in a cluster (`registry_<table>`). */
export function sharedTableName(table: TransferTable): string {
  return `registry_${table}`;
}

async function openTransferTables(state: SharedState): Promise<Record<TransferTable, SharedTable<unknown>>> {
  const tables = {} as Record<TransferTable, SharedTable<unknown>>;
  for (const t of TRANSFER_TABLES) {
    tables[t] = await state.table<unknown>(sharedTableName(t), {
      read: (raw) => raw,
    });
  }
  return tables;
}

/** Every record of a cluster's registry tables, checked like an import. */
export async function* exportShared(state: SharedState): AsyncGenerator<TransferRecord> {
  const tables = await openTransferTables(state);
  for (const t of TRANSFER_TABLES) {
    for (const entry of tables[t].entries()) yield readTransferRecord(t, entry.key, entry.value);
  }
}

/**
 * Writes records into a cluster's registry tables (create-if-absent: a key
 * that exists with other content is refused, one that exists with the same
 * content counts as written, so a retried import is harmless), and publishes
 * each device's auth record for the edges. Refuses (registry.duplicate)
 * before writing when any key exists with other content.
 */
export async function importShared(
  state: SharedState,
  records: TransferRecord[],
): Promise<{ written: number }> {
  const tables = await openTransferTables(state);
  const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
  for (const r of records) {
    const existing = tables[r.table].get(r.key);
    if (existing && !same(existing.value, r.value)) {
      throw new GatewayError(
        'registry.duplicate',
        `${r.table} ${r.key} is already in the cluster with other content`,
      );
    }
  }
  const auth = await openDeviceAuthTable(state);
  let written = 0;
  for (const r of records) {
    await modify(tables[r.table], r.key, (current) => {
      if (current && !same(current.value, r.value)) {
        throw new GatewayError('registry.duplicate', `${r.table} ${r.key} was written meanwhile`);
      }
      return current ? undefined : r.value;
    });
    if (r.table === 'devices') {
      const d = r.value;
      const record: DeviceAuthRecordV1 = {
        v: DEVICE_AUTH_RECORD_VERSION,
        imei: d.imei,
        operator: d.operator,
        status: d.status,
        secretHash: d.secretHash,
        keyEpoch: deviceKeyEpoch(d),
      };
      if (d.profile !== undefined) record.profile = d.profile;
      await modify(auth, d.imei, () => record);
    }
    written += 1;
  }
  return { written };
}

/**
 * The registry's tables as a whole, for the transfer between registries
 * (registry-transfer.ts, `mmgw registry export|import`): every record as
 * stored (from either backend), and a write of checked records into lmdb in
 * one transaction (the shared state's side is registry-transfer.ts
 * importShared).
 */
import type { Database } from 'lmdb';
import type { ProvisionedAccountRecord } from './provisioned-accounts.ts';
import {
  type AdminUserRecordV1,
  type DeviceRecordV1,
  readAdminUserRecord,
  readDeviceRecord,
} from './records.ts';
import type { StoredRef } from './ref-store.ts';
import { LmdbRegistryTable, pairKey, type RegistryTable } from './registry-table.ts';
import type { TransferRecord } from './registry-transfer.ts';

/** The single-node registry's lmdb databases. */
export interface LmdbRegistryDatabases {
  devices: Database<DeviceRecordV1, string>;
  /** The IMSI index: `<imsi>:<imei>` → true. */
  imsis: Database<boolean, string>;
  admins: Database<AdminUserRecordV1, string>;
  refs: Database<StoredRef, string[]>;
  accounts: Database<ProvisionedAccountRecord, string[]>;
}

/** The registry's tables, on lmdb or on the shared state. */
export interface RegistryTableSet {
  devices: RegistryTable<DeviceRecordV1>;
  admins: RegistryTable<AdminUserRecordV1>;
  refs: RegistryTable<StoredRef>;
  /** `imei/label` → ProvisionedAccountRecord: account credentials an operator set for a device. */
  accounts: RegistryTable<ProvisionedAccountRecord>;
}

/** The lmdb databases as the registry's tables: records read (and upgraded) as the registry reads them. */
export function lmdbTables(d: LmdbRegistryDatabases): RegistryTableSet {
  return {
    devices: new LmdbRegistryTable(d.devices, 'string', readDeviceRecord),
    admins: new LmdbRegistryTable(d.admins, 'string', readAdminUserRecord),
    refs: new LmdbRegistryTable(d.refs as never, 'pair', (raw) => raw as StoredRef),
    accounts: new LmdbRegistryTable(d.accounts as never, 'pair', (raw) => raw as ProvisionedAccountRecord),
  };
}

/** Every record as stored (versioned, read by the table's reader), table by table in key order. */
export function* exportTables(t: RegistryTableSet): Generator<TransferRecord> {
  for (const { key, value } of t.devices.rows()) yield { table: 'devices', key, value };
  for (const { key, value } of t.admins.rows()) yield { table: 'admins', key, value };
  for (const { key, value } of t.refs.rows()) yield { table: 'refs', key, value };
  for (const { key, value } of t.accounts.rows()) yield { table: 'accounts', key, value };
}

/**
 * Writes checked records (registry-transfer.ts parseExport) in ONE
 * transaction: all or nothing. When a key exists already nothing is written
 * and that record is returned. The IMSI index follows the devices.
 */
export async function importTables(
  t: LmdbRegistryDatabases,
  records: TransferRecord[],
): Promise<TransferRecord | undefined> {
  return t.devices.transaction(() => {
    for (const r of records) {
      const taken =
        r.table === 'devices'
          ? t.devices.doesExist(r.key)
          : r.table === 'admins'
            ? t.admins.doesExist(r.key)
            : r.table === 'refs'
              ? t.refs.doesExist(pairKey(r.key))
              : t.accounts.doesExist(pairKey(r.key));
      if (taken) return r;
    }
    for (const r of records) {
      if (r.table === 'devices') {
        t.devices.put(r.key, r.value);
        if (r.value.imsi) t.imsis.put(`${r.value.imsi}:${r.key}`, true);
      } else if (r.table === 'admins') t.admins.put(r.key, r.value);
      else if (r.table === 'refs') t.refs.put(pairKey(r.key), r.value);
      else t.accounts.put(pairKey(r.key), r.value);
    }
    return undefined;
  });
}

/**
 * The registry's tables as a whole, for the transfer between registries
 * (registry-transfer.ts, `mmgw registry export|import`): every record as
 * stored, and a write of checked records in one transaction.
 */
import type { Database } from 'lmdb';
import type { ProvisionedAccountRecord } from './provisioned-accounts.ts';
import {
  type AdminUserRecordV1,
  type DeviceRecordV1,
  readAdminUserRecord,
  readDeviceRecord,
} from './records.ts';
import type { RefDatabase } from './ref-store.ts';
import type { TransferRecord } from './registry-transfer.ts';

export interface RegistryTables {
  devices: Database<DeviceRecordV1, string>;
  /** The IMSI index: `<imsi>:<imei>` → true. */
  imsis: Database<boolean, string>;
  admins: Database<AdminUserRecordV1, string>;
  refs: RefDatabase;
  accounts: Database<ProvisionedAccountRecord, string[]>;
}

/** Every record as stored (versioned), table by table in key order. */
export function* exportTables(t: RegistryTables): Generator<TransferRecord> {
  for (const { key, value } of t.devices.getRange({ snapshot: true })) {
    yield { table: 'devices', key, value: readDeviceRecord(value) };
  }
  for (const { key, value } of t.admins.getRange({ snapshot: true })) {
    yield { table: 'admins', key, value: readAdminUserRecord(value) };
  }
  for (const { key, value } of t.refs.getRange({ snapshot: true })) {
    yield { table: 'refs', key: `${key[0]}/${key[1]}`, value };
  }
  for (const { key, value } of t.accounts.getRange({ snapshot: true })) {
    yield { table: 'accounts', key: `${key[0]}/${key[1]}`, value };
  }
}

/**
 * Writes checked records (registry-transfer.ts parseExport) in ONE
 * transaction: all or nothing. When a key exists already nothing is written
 * and that record is returned. The IMSI index follows the devices.
 */
export async function importTables(
  t: RegistryTables,
  records: TransferRecord[],
): Promise<TransferRecord | undefined> {
  const split = (key: string) => {
    const at = key.indexOf('/');
    return [key.slice(0, at), key.slice(at + 1)];
  };
  return t.devices.transaction(() => {
    for (const r of records) {
      const taken =
        r.table === 'devices'
          ? t.devices.doesExist(r.key)
          : r.table === 'admins'
            ? t.admins.doesExist(r.key)
            : r.table === 'refs'
              ? t.refs.doesExist(split(r.key))
              : t.accounts.doesExist(split(r.key));
      if (taken) return r;
    }
    for (const r of records) {
      if (r.table === 'devices') {
        t.devices.put(r.key, r.value);
        if (r.value.imsi) t.imsis.put(`${r.value.imsi}:${r.key}`, true);
      } else if (r.table === 'admins') t.admins.put(r.key, r.value);
      else if (r.table === 'refs') t.refs.put(split(r.key), r.value);
      else t.accounts.put(split(r.key), r.value);
    }
    return undefined;
  });
}

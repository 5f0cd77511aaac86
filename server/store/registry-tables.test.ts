import assert from 'node:assert/strict';
import { test } from 'node:test';
import { tempLmdbEnv } from '../../testing/store/lmdb-env.ts';
import { prepareImportRow } from './import-rows.ts';
import { exportTables, importTables, type LmdbRegistryDatabases, lmdbTables } from './registry-tables.ts';

const IMEI = '356938035643809';
const IMSI = '310150123456789';

function operatorRef(revision: number) {
  return { v: 1, kind: 'operators', id: 'op', revision, createdAt: 0, updatedAt: 0, data: {} };
}

function tables(t: Parameters<typeof tempLmdbEnv>[0]): LmdbRegistryDatabases {
  const env = tempLmdbEnv(t);
  return {
    devices: env.openDB({ name: 'devices' }),
    imsis: env.openDB({ name: 'imsi' }),
    admins: env.openDB({ name: 'admins' }),
    refs: env.openDB({ name: 'refdata' }),
    accounts: env.openDB({ name: 'accounts' }),
  };
}

test('what one registry exports another imports whole, IMSI index included', async (t) => {
  const from = tables(t);
  await from.devices.put(IMEI, prepareImportRow({ imei: IMEI, imsi: IMSI, operator: 'op' }, 0).record);
  await from.refs.put(['operators', 'op'], operatorRef(1));
  await from.accounts.put([IMEI, 'mail'], {
    v: 1,
    label: 'mail',
    service: 'mail',
    user: 'u',
    secret: 's',
    createdAt: 0,
    updatedAt: 0,
  });
  const records = [...exportTables(lmdbTables(from))];
  assert.deepEqual(
    records.map((r) => `${r.table} ${r.key}`),
    [`devices ${IMEI}`, 'refs operators/op', `accounts ${IMEI}/mail`],
  );
  const to = tables(t);
  assert.equal(await importTables(to, records), undefined);
  assert.deepEqual([...exportTables(lmdbTables(to))], records);
  assert.equal(to.imsis.get(`${IMSI}:${IMEI}`), true);
});

test('a key already there refuses the whole import and is named', async (t) => {
  const to = tables(t);
  await to.refs.put(['operators', 'op'], operatorRef(1));
  const device = prepareImportRow({ imei: IMEI, operator: 'op' }, 0).record;
  const clash = await importTables(to, [
    { table: 'devices', key: IMEI, value: device },
    {
      table: 'refs',
      key: 'operators/op',
      value: operatorRef(2),
    },
  ]);
  assert.deepEqual([clash?.table, clash?.key], ['refs', 'operators/op']);
  assert.equal(to.devices.get(IMEI), undefined);
});

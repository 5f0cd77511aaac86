import assert from 'node:assert/strict';
import { test } from 'node:test';
import { tempLmdbEnv } from '../../testing/store/lmdb-env.ts';
import { importDeviceRows } from './device-batch-import.ts';
import { prepareImportRow } from './import-rows.ts';
import type { DeviceRecordV1 } from './records.ts';

const A = '356938035643809';
const B = '490154203237518';
const IMSI = '310150123456789';

function setup(t: Parameters<typeof tempLmdbEnv>[0]) {
  const env = tempLmdbEnv(t);
  const devices = env.openDB<DeviceRecordV1, string>({ name: 'devices' });
  const imsis = env.openDB<boolean, string>({ name: 'imsi' });
  return { host: { devices, imsis, now: () => 3 }, devices, imsis };
}

test('all-or-nothing writes nothing when a row is already stored', async (t) => {
  const { host, devices } = setup(t);
  await devices.put(A, prepareImportRow({ imei: A, operator: 'op' }, 0).record);
  const result = await importDeviceRows(
    host,
    [
      { imei: B, operator: 'op', line: 2 },
      { imei: A, operator: 'op', line: 3 },
    ],
    { mode: 'all-or-nothing' },
  );
  assert.deepEqual([result.written, result.secrets, result.rejected.map((r) => r.line)], [0, [], [3]]);
  assert.equal(devices.get(B), undefined);
});

test('valid-only writes the rows that pass, with their IMSI index entries and progress', async (t) => {
  const { host, devices, imsis } = setup(t);
  const progress: number[] = [];
  const result = await importDeviceRows(
    host,
    [
      { imei: A, imsi: IMSI, operator: 'op', line: 2 },
      { imei: 'bad', operator: 'op', line: 3 },
      { imei: B, operator: 'op', line: 4 },
    ],
    { mode: 'valid-only', onProgress: (done) => progress.push(done) },
  );
  assert.equal(result.written, 2);
  assert.deepEqual(
    result.secrets.map((s) => s.imei),
    [A, B],
  );
  assert.deepEqual(
    result.rejected.map((r) => r.code),
    ['registry.invalid_imei'],
  );
  assert.equal(devices.get(B)?.createdAt, 3);
  assert.equal(imsis.get(`${IMSI}:${A}`), true);
  assert.equal(progress.at(-1), 2);
});

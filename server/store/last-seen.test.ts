import assert from 'node:assert/strict';
import { test } from 'node:test';
import { tempLmdbEnv } from '../../testing/store/lmdb-env.ts';
import { LastSeen } from './last-seen.ts';
import { DEVICE_RECORD_VERSION, type DeviceRecordV1, readDeviceRecord } from './records.ts';
import { LmdbRegistryTable } from './registry-table.ts';

const IMEI = '356938035643809';

function setup(t: Parameters<typeof tempLmdbEnv>[0]) {
  const devices = tempLmdbEnv(t).openDB<DeviceRecordV1, string>({ name: 'devices' });
  let closed = false;
  // A period no test waits for: flushes here are explicit.
  const lastSeen = new LastSeen(
    {
      devices: new LmdbRegistryTable(devices, 'string', readDeviceRecord),
      now: () => 50,
      isClosed: () => closed,
    },
    3_600_000,
  );
  t.after(async () => lastSeen.stop());
  const record: DeviceRecordV1 = {
    v: DEVICE_RECORD_VERSION,
    imei: IMEI,
    operator: 'op',
    status: 'enabled',
    createdAt: 0,
    secretHash: 'h',
  };
  return { devices, lastSeen, record, close: () => (closed = true) };
}

test('the newest time noted is written at flush, an older stored one never replaces it', async (t) => {
  const { devices, lastSeen, record } = setup(t);
  await devices.put(IMEI, record);
  lastSeen.touch(IMEI, 300);
  lastSeen.touch(IMEI, 200);
  assert.equal(devices.get(IMEI)?.lastSeenAt, undefined);
  await lastSeen.flush();
  assert.equal(devices.get(IMEI)?.lastSeenAt, 300);
  await devices.put(IMEI, { ...record, lastSeenAt: 900 });
  lastSeen.touch(IMEI, 400);
  await lastSeen.flush();
  assert.equal(devices.get(IMEI)?.lastSeenAt, 900);
  lastSeen.touch(IMEI);
  await devices.put(IMEI, record);
  await lastSeen.flush();
  assert.equal(devices.get(IMEI)?.lastSeenAt, 50);
});

test('unknown and forgotten devices are not written, nor anything once closed', async (t) => {
  const { devices, lastSeen, record, close } = setup(t);
  lastSeen.touch('490154203237518', 10);
  await devices.put(IMEI, record);
  lastSeen.touch(IMEI, 10);
  lastSeen.forget(IMEI);
  await lastSeen.flush();
  assert.equal(devices.get('490154203237518'), undefined);
  assert.equal(devices.get(IMEI)?.lastSeenAt, undefined);
  lastSeen.touch(IMEI, 20);
  close();
  await lastSeen.flush();
  assert.equal(devices.get(IMEI)?.lastSeenAt, undefined);
});

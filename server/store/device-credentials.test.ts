import assert from 'node:assert/strict';
import { test } from 'node:test';
import { deviceInfo, deviceKeyEpoch, profileHeartbeatMs } from './device-credentials.ts';
import { DEVICE_RECORD_VERSION, type DeviceRecordV1 } from './records.ts';
import type { RefRecord } from './ref-store.ts';

const record: DeviceRecordV1 = {
  v: DEVICE_RECORD_VERSION,
  imei: '356938035643809',
  operator: 'op',
  status: 'enabled',
  createdAt: 0,
  secretHash: 'hash-1',
};

function ref(data: Record<string, unknown>): RefRecord {
  return { kind: 'k', id: 'i', revision: 1, createdAt: 0, updatedAt: 0, data };
}

test('the key epoch follows the secret hash', () => {
  assert.equal(deviceKeyEpoch(record), deviceKeyEpoch({ ...record }));
  assert.notEqual(deviceKeyEpoch(record), deviceKeyEpoch({ ...record, secretHash: 'hash-2' }));
  assert.equal(deviceKeyEpoch(record).length, 12);
});

test('the info carries profile and heartbeat only when there are some', () => {
  assert.deepEqual(deviceInfo(record, undefined), {
    imei: record.imei,
    operator: 'op',
    status: 'enabled',
    keyEpoch: deviceKeyEpoch(record),
  });
  const info = deviceInfo({ ...record, profile: 'gold' }, 30_000);
  assert.equal(info.profile, 'gold');
  assert.equal(info.heartbeatMs, 30_000);
});

test("the service profile's heartbeat wins over the operator profile's; non-integers are ignored", () => {
  const refs = new Map<string, RefRecord>([
    ['service-profiles/gold', ref({ policies: { heartbeatMs: 60_000 } })],
    ['service-profiles/odd', ref({ policies: { heartbeatMs: 'soon' } })],
    ['operator-profiles/net', ref({ heartbeatMs: 90_000 })],
  ]);
  const get = (kind: string, id: string) => refs.get(`${kind}/${id}`);
  const both = { ...record, profile: 'gold', operatorProfile: 'net' };
  assert.equal(profileHeartbeatMs(both, get), 60_000);
  assert.equal(profileHeartbeatMs({ ...both, profile: 'odd' }, get), 90_000);
  assert.equal(profileHeartbeatMs({ ...record, operatorProfile: 'net' }, get), 90_000);
  assert.equal(profileHeartbeatMs({ ...record, profile: 'missing' }, get), undefined);
  assert.equal(profileHeartbeatMs(record, get), undefined);
});

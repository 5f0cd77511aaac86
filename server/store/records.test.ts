import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type DeviceRecordV1, onlyLastSeenDiffers } from './records.ts';

test('onlyLastSeenDiffers: true for a last-seen write, false for any other field', () => {
  const base: DeviceRecordV1 = {
    v: 1,
    imei: '356938035643809',
    imsi: '262011234567890',
    operator: 'op',
    status: 'enabled',
    createdAt: 1,
    secretHash: 'h',
  };
  assert.equal(onlyLastSeenDiffers(base, { ...base, lastSeenAt: 5 }), true);
  assert.equal(onlyLastSeenDiffers({ ...base, lastSeenAt: 4 }, { ...base, lastSeenAt: 5 }), true);
  assert.equal(onlyLastSeenDiffers(base, { ...base, status: 'disabled' }), false);
  assert.equal(onlyLastSeenDiffers(base, { ...base, secretHash: 'g', lastSeenAt: 5 }), false);
  const { imsi: _, ...noImsi } = base;
  assert.equal(onlyLastSeenDiffers(base, noImsi), false, 'a field removed');
  assert.equal(onlyLastSeenDiffers(noImsi, base), false, 'a field added');
});

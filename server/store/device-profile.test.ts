import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type DeviceProfileRegistry, deviceProfile } from './device-profile.ts';
import type { RefRecord } from './ref-store.ts';

function registryWith(policies: Record<string, unknown>): DeviceProfileRegistry {
  return {
    getDevice: (imei) => (imei === '1' ? { profile: 'p', operator: 'op1' } : undefined),
    getRef: (_kind, id) =>
      id === 'p'
        ? ({ id, data: { services: ['mail'], accounts: [], policies } } as unknown as RefRecord)
        : undefined,
    listDeviceAccounts: () => [],
  };
}

test('the answer names the operator; smsWakeups only when the profile says true', () => {
  const on = deviceProfile(registryWith({ smsWakeups: true, imageQuality: 80 }), '1');
  assert.equal(on.operator, 'op1');
  assert.deepEqual(on.policies, { imageQuality: 80, smsWakeups: true });
  for (const smsWakeups of [false, 'yes', 1, undefined]) {
    assert.deepEqual(deviceProfile(registryWith({ smsWakeups }), '1').policies, {}, String(smsWakeups));
  }
  const unknown = deviceProfile(registryWith({ smsWakeups: true }), '2');
  assert.equal(unknown.operator, undefined);
  assert.deepEqual(unknown.policies, {});
});

test('wakeupPreview: sender or sender_subject as given; none, unknown or absent is no preview', () => {
  for (const wakeupPreview of ['sender', 'sender_subject'] as const) {
    assert.deepEqual(deviceProfile(registryWith({ wakeupPreview }), '1').policies, { wakeupPreview });
  }
  for (const wakeupPreview of ['none', 'everything', 1, true, undefined]) {
    assert.deepEqual(deviceProfile(registryWith({ wakeupPreview }), '1').policies, {}, String(wakeupPreview));
  }
});

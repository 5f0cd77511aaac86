import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { DeviceProfile } from '../../store/device-profile.ts';
import { HOUR_MS, SmsRateLimits, smsAdmission } from './sms-limits.ts';

test('per device: N within a sliding hour, then refused with the reason until the oldest is an hour old', () => {
  let now = 1_000_000;
  const limits = new SmsRateLimits({ perDevicePerHour: 2, perOperatorPerHour: 100, now: () => now });
  assert.equal(limits.take('d1', 'op').ok, true);
  now += 10 * 60_000;
  assert.equal(limits.take('d1', 'op').ok, true);
  const third = limits.take('d1', 'op');
  assert.deepEqual(third, { ok: false, why: 'rate limit: 2 SMS per device per hour' });
  assert.equal(limits.take('d2', 'op').ok, true, 'another device has its own hour');
  now += HOUR_MS - 10 * 60_000 - 1;
  assert.equal(limits.take('d1', 'op').ok, false, 'the first is not an hour old yet');
  now += 1;
  assert.equal(limits.take('d1', 'op').ok, true, 'the first has left the window');
});

test('per operator: M over all its devices; a released slot (an SMS not sent) counts for neither', () => {
  const limits = new SmsRateLimits({ perDevicePerHour: 5, perOperatorPerHour: 3, now: () => 42 });
  const first = limits.take('a', 'op1');
  assert.ok(first.ok);
  assert.ok(limits.take('b', 'op1').ok);
  assert.ok(limits.take('c', 'op1').ok);
  assert.deepEqual(limits.take('d', 'op1'), { ok: false, why: 'rate limit: 3 SMS per operator per hour' });
  assert.ok(limits.take('d', 'op2').ok, 'another operator');
  first.release();
  assert.ok(limits.take('d', 'op1').ok, 'the released slot is free again');
  assert.equal(limits.take('e', 'op1').ok, false);
});

test('a limit of 0 sends nothing', () => {
  const limits = new SmsRateLimits({ perDevicePerHour: 0, perOperatorPerHour: 10 });
  assert.equal(limits.take('a', 'op').ok, false);
});

test('admission: only where the profile allows SMS, counted per the profile’s operator', async () => {
  const profiles: Record<string, DeviceProfile | undefined> = {
    yes: { operator: 'op', presets: [], accounts: [], policies: { smsWakeups: true } },
    also: { operator: 'op', presets: [], accounts: [], policies: { smsWakeups: true } },
    no: { operator: 'op', presets: [], accounts: [], policies: {} },
  };
  const admit = smsAdmission(
    new SmsRateLimits({ perDevicePerHour: 5, perOperatorPerHour: 1 }),
    async (id) => profiles[id],
  );
  assert.deepEqual(await admit('no'), { ok: false, why: 'the service profile does not allow SMS wake-ups' });
  assert.equal((await admit('unknown')).ok, false, 'no profile known: no SMS');
  assert.equal((await admit('yes')).ok, true);
  assert.deepEqual(await admit('also'), { ok: false, why: 'rate limit: 1 SMS per operator per hour' });
});

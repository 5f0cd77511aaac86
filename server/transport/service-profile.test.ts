import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GatewayError } from '../../device-protocol/errors.ts';
import { Subjects } from '../bus/bus.ts';
import { InProcessBus } from '../bus/inproc.ts';
import type { DeviceProfile } from '../store/device-profile.ts';
import { busDeviceProfileFetch, DeviceProfiles } from './service-profile.ts';

const profile = (name: string) =>
  ({ profile: name, presets: [], policies: {}, accounts: [] }) as DeviceProfile;

test('an expired answer is used at once while a fresh one is asked for; only an empty cache waits', async () => {
  let now = 0;
  const asked: Array<(p: DeviceProfile) => void> = [];
  const profiles = new DeviceProfiles(() => new Promise((resolve) => asked.push(resolve)), {
    ttlMs: 1000,
    now: () => now,
  });
  const first = profiles.get('d1');
  assert.equal(asked.length, 1, 'nothing cached: asked, and the caller waits');
  asked[0]?.(profile('a'));
  assert.equal((await first)?.profile, 'a');

  now = 500;
  assert.equal((await profiles.get('d1'))?.profile, 'a');
  assert.equal(asked.length, 1, 'fresh: not asked again');

  now = 1500;
  // The admin does not answer (frozen): the caller still gets the old answer at once.
  assert.equal((await profiles.get('d1'))?.profile, 'a');
  assert.equal(asked.length, 2, 'expired: asked in the background');
  assert.equal((await profiles.get('d1'))?.profile, 'a');
  assert.equal(asked.length, 2, 'one question at a time');
  asked[1]?.(profile('b'));
  await new Promise((r) => setImmediate(r));
  assert.equal((await profiles.get('d1'))?.profile, 'b');
});

test('the bus fetch tries again after a timeout (another admin may answer), not after a refusal', async (t) => {
  const bus = new InProcessBus();
  t.after(() => bus.close());
  let calls = 0;
  bus.subscribe(Subjects.deviceProfile, (msg) => {
    calls++;
    const imei = (msg.data as { imei: string }).imei;
    if (imei === 'unknown') throw new GatewayError('auth.unknown_device');
    // The first question reaches a frozen admin: no answer ever.
    return calls === 1 ? new Promise(() => {}) : profile(`p-${imei}`);
  });
  const fetch = busDeviceProfileFetch(bus, 50, 3);
  assert.equal((await fetch('d1')).profile, 'p-d1');
  assert.equal(calls, 2);
  await assert.rejects(fetch('unknown'), (err: GatewayError) => err.code === 'auth.unknown_device');
  assert.equal(calls, 3, 'a refusal is an answer: not asked again');
});

test('the bus fetch gives up after its tries', async (t) => {
  const bus = new InProcessBus();
  t.after(() => bus.close());
  let calls = 0;
  bus.subscribe(Subjects.deviceProfile, () => {
    calls++;
    return new Promise(() => {});
  });
  await assert.rejects(
    busDeviceProfileFetch(bus, 20, 3)('d1'),
    (err: GatewayError) => err.code === 'bus.timeout',
  );
  assert.equal(calls, 3);
});

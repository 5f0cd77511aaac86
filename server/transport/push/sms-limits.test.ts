import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { eventually } from '../../../testing/eventually.ts';
import type { DeviceProfile } from '../../store/device-profile.ts';
import { LmdbSharedState } from '../../store/shared/lmdb.ts';
import { SmsLimits } from './shared-sms-limits.ts';
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

describe('SmsLimits on a shared state (the cluster’s counts; lmdb here, JetStream KV in test/integration/sms-limits-cluster)', () => {
  let dir: string;
  let state: LmdbSharedState;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'mmgw-sms-limits-'));
    state = new LmdbSharedState(dir);
  });
  after(async () => {
    await state.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('two transports share the device’s and the operator’s hour; a released slot is free again', async () => {
    let now = 10 * HOUR_MS + 5;
    const opts = { perDevicePerHour: 2, perOperatorPerHour: 3, now: () => now };
    const a = new SmsLimits(opts);
    const b = new SmsLimits(opts);
    await a.share(state);
    await b.share(state);
    assert.ok((await a.take('d1', 'op')).ok);
    assert.ok((await b.take('d1', 'op')).ok);
    assert.deepEqual(await a.take('d1', 'op'), { ok: false, why: 'rate limit: 2 SMS per device per hour' });
    const third = await b.take('d2', 'op');
    assert.ok(third.ok);
    assert.deepEqual(await a.take('d3', 'op'), { ok: false, why: 'rate limit: 3 SMS per operator per hour' });
    third.release();
    await eventually('the slot given back', async () => (await a.take('d3', 'op')).ok);
    now += 2 * HOUR_MS;
    assert.ok((await b.take('d1', 'op')).ok, 'a new hour');
  });

  test('the counts of past hours are removed; a write that fails falls back to the node’s count', async () => {
    let now = 100 * HOUR_MS;
    const name = `sms_prune_${process.pid}`;
    const table = await state.table(name, { read: (raw) => raw as { n: number } });
    const limits = new SmsLimits({ perDevicePerHour: 1, perOperatorPerHour: 10, now: () => now });
    await limits.share({ kind: 'lmdb', table: async () => table as never, close: async () => {} });
    assert.ok((await limits.take('d1', 'op')).ok);
    now += 3 * HOUR_MS;
    assert.ok((await limits.take('d2', 'op')).ok);
    await eventually('the old hour removed', () =>
      table.list().every((e) => e.key.startsWith(String(103).padStart(10, '0'))),
    );
    assert.equal(table.size(), 2);
    const failing = new SmsLimits({ perDevicePerHour: 1, perOperatorPerHour: 10 });
    const broken = Object.create(table, {
      create: { value: () => Promise.reject(new Error('no quorum')) },
    });
    await failing.share({ kind: 'lmdb', table: async () => broken, close: async () => {} });
    assert.ok((await failing.take('d9', 'op')).ok, 'counted on the node');
    assert.equal((await failing.take('d9', 'op')).ok, false, 'and the node’s count holds');
  });
});

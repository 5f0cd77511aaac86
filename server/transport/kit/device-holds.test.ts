import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { LmdbSharedState } from '../../store/shared/lmdb.ts';
import { DeviceHolds, readDeviceHold } from './device-holds.ts';

const dir = mkdtempSync(join(tmpdir(), 'mmgw-device-holds-'));
const state = new LmdbSharedState(join(dir, 'shared'));
after(async () => {
  await state.close();
  rmSync(dir, { recursive: true, force: true });
});

const live = new Set(['a', 'b']);
const holdsOf = (nodeId: string, waitMs?: number) =>
  DeviceHolds.open(state, {
    nodeId,
    live: (id) => live.has(id),
    now: () => 1,
    ...(waitMs ? { waitMs } : {}),
  });

test('a device goes to the next node only once the live one that ran it let go', async () => {
  const a = await holdsOf('a');
  const b = await holdsOf('b');
  assert.equal(await a.acquire('dev-1'), undefined, 'nobody had it');
  assert.equal(a.holder('dev-1'), 'a');
  const steps: string[] = [];
  const taking = b.acquire('dev-1').then((from) => steps.push(`b took it from ${from}`));
  // The take cannot happen while a holds it: a's release is what lets it through.
  await new Promise((resolve) => setImmediate(resolve));
  steps.push('a releases');
  await a.release('dev-1');
  await taking;
  assert.deepEqual(steps, ['a releases', 'b took it from undefined']);
  assert.equal(b.holder('dev-1'), 'b');
  await a.release('dev-1');
  assert.equal(b.holder('dev-1'), 'b', 'a release by a node that does not hold it changes nothing');
});

test('a dead node holds nobody up; a stuck live one only for the wait', async () => {
  const gone = await holdsOf('gone');
  await gone.acquire('dev-2');
  await gone.acquire('dev-3');
  live.add('stuck');
  const stuck = await holdsOf('stuck');
  await stuck.acquire('dev-3');
  const b = await holdsOf('b', 20);
  assert.equal(await b.acquire('dev-2'), 'gone');
  assert.equal(await b.acquire('dev-3'), 'stuck', 'taken after the wait');
  assert.equal(b.holder('dev-3'), 'b');
});

test('stored holds are checked', () => {
  assert.deepEqual(readDeviceHold({ v: 1, node: 'a', at: 3 }), { v: 1, node: 'a', at: 3 });
  for (const bad of [null, { v: 2, node: 'a', at: 3 }, { v: 1, node: '', at: 3 }, { v: 1, node: 'a' }]) {
    assert.throws(() => readDeviceHold(bad));
  }
});

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { LmdbSharedState } from '../../store/shared/lmdb.ts';
import { TransportStorage } from '../kit/transport-storage.ts';
import { DAY_MS, expireUnused, recordUse } from './expiry.ts';
import { PushRegistrations, type PushRegistration } from './registrations.ts';

const dirs: string[] = [];
const opened: TransportStorage[] = [];
after(async () => {
  for (const s of opened) await s.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function registrations(): PushRegistrations {
  const dir = mkdtempSync(join(tmpdir(), 'mmgw-expiry-'));
  dirs.push(dir);
  const storage = TransportStorage.open(dir);
  opened.push(storage);
  return new PushRegistrations(storage);
}

const ids = (regs: PushRegistrations, deviceId: string) => regs.list(deviceId).map((r) => r.id);

const T0 = 1_800_000_000_000;
const fcm = (token: string, at: number): PushRegistration => ({ kind: 'fcm', token, at });

test('a use is written at most once a day; a use of a channel removed meanwhile writes nothing', async () => {
  const regs = registrations();
  await regs.put('d1', 'f1', fcm('tok', T0));
  await recordUse(regs, 'd1', 'f1', T0 + DAY_MS - 1);
  assert.equal(regs.get('d1', 'f1')!.usedAt, undefined, 'registered less than a day ago: no write');
  await recordUse(regs, 'd1', 'f1', T0 + DAY_MS);
  assert.equal(regs.get('d1', 'f1')!.usedAt, T0 + DAY_MS);
  await recordUse(regs, 'd1', 'f1', T0 + DAY_MS + 3600_000);
  assert.equal(regs.get('d1', 'f1')!.usedAt, T0 + DAY_MS, 'used again within the day: no write');
  await recordUse(regs, 'd1', 'gone', T0 + 5 * DAY_MS);
  assert.deepEqual(ids(regs, 'd1'), ['f1'], 'no record made for a channel that is not there');
});

test('channels neither registered nor used for expireDays go, each told once; the others stay', async () => {
  const regs = registrations();
  const now = T0 + 100 * DAY_MS;
  await regs.put('d1', 'old', fcm('old', now - 61 * DAY_MS));
  await regs.put('d1', 'fresh', fcm('fresh', now - 59 * DAY_MS));
  await regs.put('d2', 'used', { ...fcm('used', now - 90 * DAY_MS), usedAt: now - 10 * DAY_MS });
  await regs.put('d2', 'unused', { ...fcm('unused', now - 90 * DAY_MS), usedAt: now - 70 * DAY_MS });
  const told: string[] = [];
  const n = await expireUnused(regs, 60, now, (deviceId, id, record) =>
    told.push(`${deviceId} ${id} ${record.kind}`),
  );
  assert.equal(n, 2);
  assert.deepEqual(told.sort(), ['d1 old fcm', 'd2 unused fcm']);
  assert.deepEqual([...ids(regs, 'd1'), ...ids(regs, 'd2')], ['fresh', 'used']);
  assert.equal(await expireUnused(regs, 60, now, () => assert.fail('nothing left to expire')), 0);
});

test('two transports sweeping one shared table: each expired channel is removed and told by one', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mmgw-expiry-shared-'));
  dirs.push(dir);
  const state = new LmdbSharedState(join(dir, 'shared'));
  const a = registrations();
  const b = registrations();
  await a.share(state);
  await b.share(state);
  const now = T0 + 100 * DAY_MS;
  for (let i = 0; i < 20; i++) await a.put(`d${i}`, 'x', fcm(`t${i}`, now - 61 * DAY_MS));
  await a.put('keep', 'x', fcm('keep', now - DAY_MS));
  await b.caughtUp();
  const told: string[] = [];
  const [na, nb] = await Promise.all([
    expireUnused(a, 60, now, (deviceId) => told.push(deviceId)),
    expireUnused(b, 60, now, (deviceId) => told.push(deviceId)),
  ]);
  assert.equal(na + nb, 20);
  assert.equal(told.length, 20);
  assert.equal(new Set(told).size, 20, 'no channel told twice');
  await a.caughtUp();
  assert.deepEqual(ids(a, 'keep'), ['x']);
  assert.equal(a.list('d0').length, 0);
});

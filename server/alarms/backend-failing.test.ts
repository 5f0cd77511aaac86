import assert from 'node:assert/strict';
import { test } from 'node:test';
import { eventually } from '../../testing/eventually.ts';
import type { DeviceLogRecord } from '../records/types.ts';
import { AlarmBook } from './alarm-book.ts';
import { BackendFailingWatch } from './backend-failing.ts';
import { MemoryAlarmHistory } from './history.ts';

const WINDOW = 60_000;

async function rig() {
  let now = 100_000;
  const book = await AlarmBook.open({ history: new MemoryAlarmHistory(), nodeId: 'adm', now: () => now });
  const watch = new BackendFailingWatch(book, { windowMs: WINDOW, perDevice: 3, perPreset: 4 }, () => now);
  return {
    book,
    watch,
    advance(ms: number) {
      now += ms;
    },
    active: () =>
      book
        .list(true)
        .map((a) => a.subject)
        .sort(),
  };
}

const rec = (imei: string, kind: DeviceLogRecord['kind'], over: Partial<DeviceLogRecord> = {}) => ({
  at: 0,
  imei,
  node: 't1',
  kind,
  service: 'mail' as const,
  code: 'mail.unreachable',
  message: 'login failed',
  detail: { account: 'acc1' },
  ...over,
});

test('a device’s failed requests reach the threshold within the window: raised once', async () => {
  const r = await rig();
  r.watch.observe([rec('1', 'backend_error'), rec('1', 'backend_error')]);
  assert.deepEqual(r.active(), [], 'two are not an alarm yet');
  r.advance(WINDOW + 1);
  r.watch.observe([rec('1', 'backend_error'), rec('1', 'backend_error')]);
  assert.deepEqual(r.active(), [], 'the first two fell out of the window');
  r.watch.observe([rec('1', 'backend_error'), rec('1', 'backend_error', { service: 'im' })]);
  await eventually('raised', () => r.active().join() === 'device:1:mail');
  const [alarm] = r.book.list(true);
  assert.equal(alarm?.kind, 'backend_failing');
  assert.equal(alarm?.severity, 'warning');
  assert.match(alarm?.message ?? '', /3 failed backend requests.*mail\.unreachable/);
  r.watch.observe([rec('1', 'backend_error'), rec('1', 'backend_error')]);
  assert.equal((await r.book.history.list({ limit: 10 })).length, 1, 'one raise while it stays raised');
  await r.book.close();
});

test('a success of the same account clears it; another account’s success does not', async () => {
  const r = await rig();
  r.watch.observe([rec('1', 'backend_error'), rec('1', 'backend_error'), rec('1', 'backend_error')]);
  await eventually('raised', () => r.active().length === 1);
  r.watch.observe([rec('1', 'sync', { detail: { account: 'other' } })]);
  assert.equal(r.active().length, 1);
  r.watch.observe([rec('1', 'backend_login')]);
  await eventually('cleared', () => r.active().length === 0);
  await r.book.close();
});

test('a quiet window clears it', async () => {
  const r = await rig();
  r.watch.observe([rec('1', 'backend_error'), rec('1', 'backend_error'), rec('1', 'backend_error')]);
  await eventually('raised', () => r.active().length === 1);
  r.advance(WINDOW / 2);
  r.watch.sweep();
  assert.equal(r.active().length, 1);
  r.advance(WINDOW);
  r.watch.sweep();
  await eventually('cleared', () => r.active().length === 0);
  await r.book.close();
});

test('failures of many devices on one preset raise the preset’s alarm', async () => {
  const r = await rig();
  const p = (imei: string) => rec(imei, 'backend_error', { detail: { account: 'a', preset: 'Corp' } });
  r.watch.observe([p('1'), p('2'), p('3')]);
  assert.deepEqual(r.active(), []);
  r.watch.observe([p('4')]);
  await eventually('preset raised', () => r.active().join() === 'preset:mail:Corp');
  r.watch.observe([rec('5', 'sync', { detail: { account: 'a', preset: 'Corp' } })]);
  await eventually('cleared by a success on the preset', () => r.active().length === 0);
  await r.book.close();
});

test('malformed records are skipped', async () => {
  const r = await rig();
  r.watch.observe([
    null,
    7,
    'x',
    { kind: 'backend_error' },
    { imei: 1, kind: 'backend_error', service: 'mail' },
  ]);
  assert.deepEqual(r.active(), []);
  await r.book.close();
});

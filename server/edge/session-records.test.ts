import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { DeviceLogRecord, Recorder, UsageDelta } from '../records/types.ts';
import { DeviceSession } from './device-session.ts';
import { SessionRecords, USAGE_FLUSH_MS } from './session-records.ts';

function setup() {
  const logs: Partial<DeviceLogRecord>[] = [];
  const usage: Partial<UsageDelta>[] = [];
  const recorder: Recorder = {
    log: (r) => logs.push(r),
    usage: (u) => usage.push(u),
    flush: async () => {},
    close: async () => {},
  };
  const clock = { now: 5000 };
  const records = new SessionRecords(recorder, () => clock.now);
  const s = new DeviceSession('1.a', '1', 't');
  s.operator = 'op';
  return { records, logs, usage, clock, s };
}

test('a login and its logout pair up in the usage counters, stamped by the injected clock', () => {
  const t = setup();
  t.records.login('1', 'op', 'ws');
  t.clock.now = 9000;
  t.records.ended(t.s, 'session.replaced');
  assert.deepEqual(t.logs, [
    { at: 5000, imei: '1', kind: 'connect', service: 'session', detail: { carrier: 'ws' } },
    { at: 9000, imei: '1', kind: 'takeover', service: 'session', code: 'session.replaced' },
    { at: 9000, imei: '1', kind: 'logout', service: 'session', code: 'session.replaced' },
  ]);
  assert.deepEqual(t.usage, [
    { at: 5000, imei: '1', operator: 'op', service: 'session', logins: 1 },
    { at: 9000, imei: '1', operator: 'op', service: 'session', logouts: 1 },
  ]);
});

test('a resume records a carrier switch only when the carrier kind changed', () => {
  const t = setup();
  t.s.via = 'ws';
  t.records.resumed(t.s, 'ws');
  t.records.resumed(t.s, 'poll');
  assert.deepEqual(
    t.logs.map((r) => r.kind),
    ['resume', 'resume', 'carrier_switch'],
  );
  assert.equal(t.logs[2]?.message, 'carrier ws → poll');
});

test('bytes are written when flushed and at most once per USAGE_FLUSH_MS by the sweep', () => {
  const t = setup();
  t.s.bytesIn = 10;
  t.s.bytesOut = 20;
  t.records.flushUsageIfDue([t.s], 5000 + USAGE_FLUSH_MS - 1);
  assert.deepEqual(t.usage, []);
  t.records.flushUsageIfDue([t.s], 5000 + USAGE_FLUSH_MS);
  assert.deepEqual(t.usage, [
    { at: 5000, imei: '1', operator: 'op', service: 'session', bytesIn: 10, bytesOut: 20 },
  ]);
  assert.equal(t.s.bytesIn + t.s.bytesOut, 0);
  t.records.flushUsage(t.s); // nothing new: nothing written
  assert.equal(t.usage.length, 1);
});

test('refusals are sampled, and the minutely flush writes what was not recorded one by one', () => {
  const t = setup();
  for (let i = 0; i < 50; i++) t.records.authFailure('1', 'ws', 'auth.bad_secret', '10.0.0.2');
  assert.deepEqual(
    t.logs.map((r) => [r.kind, r.code, r.detail]),
    [['auth_failure', 'auth.bad_secret', { carrier: 'ws', address: '10.0.0.2' }]],
  );
  t.records.flushUsageIfDue([], 5000 + USAGE_FLUSH_MS);
  assert.equal(t.logs.length, 2);
  assert.equal(t.logs[1]?.detail?.suppressed, 49);
});

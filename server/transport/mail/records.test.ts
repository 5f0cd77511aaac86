import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { DeviceLogRecord, Recorder, UsageDelta } from '../../records/types.ts';
import { recordMailUsage } from './records.ts';

function fakeRecorder() {
  const logs: Omit<DeviceLogRecord, 'at' | 'node'>[] = [];
  const usage: Omit<UsageDelta, 'at'>[] = [];
  const recorder: Recorder = {
    log: (r) => logs.push(r),
    usage: (u) => usage.push(u),
    async flush() {},
    async close() {},
  };
  return { recorder, logs, usage };
}

const base = { deviceId: '356938035643809', account: 'm1', bytesIn: 100, bytesOut: 20, ok: true };

test('login, sync, body and send become log records and usage deltas of service mail', () => {
  const { recorder, logs, usage } = fakeRecorder();
  for (const op of ['login', 'sync', 'body', 'send']) recordMailUsage(recorder, { ...base, op });
  assert.deepEqual(
    logs.map((l) => [l.kind, l.imei, l.service, l.bytesIn, l.bytesOut]),
    [
      ['backend_login', base.deviceId, 'mail', 100, 20],
      ['sync', base.deviceId, 'mail', 100, 20],
      ['message_in', base.deviceId, 'mail', 100, 20],
      ['message_out', base.deviceId, 'mail', 100, 20],
    ],
  );
  assert.deepEqual(usage, [
    { imei: base.deviceId, service: 'mail', bytesIn: 100, bytesOut: 20, logins: 1 },
    { imei: base.deviceId, service: 'mail', bytesIn: 100, bytesOut: 20 },
    { imei: base.deviceId, service: 'mail', bytesIn: 100, bytesOut: 20, messagesIn: 1 },
    { imei: base.deviceId, service: 'mail', bytesIn: 100, bytesOut: 20, messagesOut: 1 },
  ]);
});

test('a failure is a backend_error with its code and counts no message', () => {
  const { recorder, logs, usage } = fakeRecorder();
  recordMailUsage(recorder, {
    ...base,
    op: 'send',
    ok: false,
    code: 'mail.recipient_refused',
    bytesOut: 0,
    bytesIn: 0,
  });
  recordMailUsage(recorder, {
    ...base,
    op: 'login',
    ok: false,
    code: 'mail.auth_failed',
    bytesIn: 0,
    bytesOut: 0,
  });
  assert.deepEqual(
    logs.map((l) => [l.kind, l.code]),
    [
      ['backend_error', 'mail.recipient_refused'],
      ['backend_error', 'mail.auth_failed'],
    ],
  );
  assert.deepEqual(usage, []);
});

test('operations without a log kind only count bytes; nothing secret is recorded', () => {
  const { recorder, logs, usage } = fakeRecorder();
  recordMailUsage(recorder, { ...base, op: 'flag' });
  assert.deepEqual(logs, []);
  assert.deepEqual(usage, [{ imei: base.deviceId, service: 'mail', bytesIn: 100, bytesOut: 20 }]);
});

test("a failure of a preset's account names the preset, so that failures count against it too", () => {
  const { recorder, logs } = fakeRecorder();
  recordMailUsage(recorder, { ...base, op: 'sync', ok: false, code: 'mail.unreachable', preset: 'corp' });
  recordMailUsage(recorder, { ...base, op: 'sync', ok: false, code: 'mail.unreachable' });
  assert.deepEqual(
    logs.map((l) => l.detail),
    [
      { op: 'sync', account: 'm1', preset: 'corp' },
      { op: 'sync', account: 'm1' },
    ],
  );
});

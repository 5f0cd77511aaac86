import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { DeviceLogRecord, Recorder } from '../records/types.ts';
import { REFUSAL_WINDOW_MS, RefusalRecords } from './refusal-records.ts';

function setup(maxWindows?: number) {
  const logs: Partial<DeviceLogRecord>[] = [];
  const recorder: Recorder = {
    log: (r) => logs.push(r),
    usage: () => {},
    flush: async () => {},
    close: async () => {},
  };
  return { logs, refusals: new RefusalRecords(recorder, maxWindows) };
}

const A = '356938035643809';

test('a thousand wrong secrets for a device in a minute: one record, then one summary with the count', () => {
  const t = setup();
  let written = 0;
  for (let i = 0; i < 1000; i++)
    if (t.refusals.refused(A, 'poll', 'auth.bad_secret', '10.0.0.2', 1000 + i)) written++;
  assert.equal(written, 1);
  assert.deepEqual(t.logs, [
    {
      at: 1000,
      imei: A,
      kind: 'auth_failure',
      service: 'session',
      code: 'auth.bad_secret',
      detail: { carrier: 'poll', address: '10.0.0.2' },
    },
  ]);
  t.refusals.flush(1000 + REFUSAL_WINDOW_MS - 1);
  assert.equal(t.logs.length, 1, 'the window is not over yet');
  t.refusals.flush(1000 + REFUSAL_WINDOW_MS);
  assert.equal(t.logs.length, 2);
  assert.equal(t.logs[1]?.detail?.suppressed, 999);
  assert.match(t.logs[1]?.message ?? '', /^999 more refused attempts/);
  // The summary opened a new window: the next refusal within it is counted, not written.
  t.refusals.refused(A, 'ws', 'auth.bad_secret', '10.0.0.3', 1000 + REFUSAL_WINDOW_MS + 5);
  assert.equal(t.logs.length, 2);
  // A quiet window is forgotten.
  t.refusals.flush(1000 + 3 * REFUSAL_WINDOW_MS);
  t.refusals.flush(1000 + 5 * REFUSAL_WINDOW_MS);
  assert.equal(t.refusals.size, 0);
  assert.equal(t.logs.length, 3);
});

test('unknown IMEIs, forged tokens and rate-limited attempts are sampled per address, not per IMEI', () => {
  const t = setup();
  for (let i = 0; i < 500; i++) {
    t.refusals.refused(`35693803${1_000_000 + i}`, 'poll', 'auth.unknown_device', '10.0.0.2', 0);
    t.refusals.refused(A, 'ws', 'auth.rate_limited', '10.0.0.2', 0);
  }
  t.refusals.refused(A, 'ws', 'auth.bad_token', '10.0.0.4', 0);
  assert.deepEqual(
    t.logs.map((r) => [r.imei, r.code, r.detail?.address]),
    [
      ['356938031000000', 'auth.unknown_device', '10.0.0.2'],
      [A, 'auth.bad_token', '10.0.0.4'],
    ],
  );
  t.refusals.flush(REFUSAL_WINDOW_MS);
  assert.equal(t.logs[2]?.detail?.suppressed, 999);
  assert.equal(t.logs[2]?.code, 'auth.rate_limited', 'the summary names the latest refusal');
});

test('memory is bounded: the oldest window goes first, its count written out', () => {
  const t = setup(10);
  t.refusals.refused(A, 'ws', 'auth.bad_secret', 'a', 0);
  t.refusals.refused(A, 'ws', 'auth.bad_secret', 'a', 1);
  for (let i = 0; i < 100; i++) t.refusals.refused(A, 'ws', 'auth.unknown_device', `addr-${i}`, 2);
  assert.equal(t.refusals.size, 10);
  assert.ok(t.logs.some((r) => r.imei === A && r.detail?.suppressed === 1));
});

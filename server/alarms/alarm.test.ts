import assert from 'node:assert/strict';
import { test } from 'node:test';
import { alarmRecord } from '../../testing/alarm-history-suite.ts';
import { readAlarmRecord } from './alarm.ts';

test('a record reads back as written; its id is rebuilt from kind and subject', () => {
  const r = alarmRecord({ kind: 'backend_failing', subject: 'device:1:mail', severity: 'warning' });
  assert.deepEqual(readAlarmRecord(JSON.parse(JSON.stringify(r))), r);
  assert.equal(readAlarmRecord({ ...r, id: 'forged' })?.id, 'backend_failing:device:1:mail');
});

test('a newer layout is read (unknown fields dropped); malformed ones are not', () => {
  const r = alarmRecord();
  assert.deepEqual(readAlarmRecord({ ...r, v: 2, extra: { x: 1 } }), r);
  for (const bad of [
    null,
    'x',
    { ...r, v: 0 },
    { ...r, v: undefined },
    { ...r, kind: 'nope' },
    { ...r, severity: 'fatal' },
    { ...r, state: 'open' },
    { ...r, subject: 7 },
    { ...r, subject: 'x'.repeat(501) },
    { ...r, at: -1 },
    { ...r, since: Number.NaN },
    { ...r, node: undefined },
  ]) {
    assert.equal(readAlarmRecord(bad), undefined, JSON.stringify(bad));
  }
});

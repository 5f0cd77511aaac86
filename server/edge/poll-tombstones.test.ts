import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MAX_TOMBSTONES, PollTombstones } from './poll-tombstones.ts';

const frame = new Uint8Array([9]);

test('the last frame is given once, and only for the session token', () => {
  const t = new PollTombstones();
  t.keep('1.a', 'token', 410, frame, 1000);
  assert.equal(t.take('1.a', 'other'), undefined);
  assert.deepEqual(t.take('1.a', 'token'), { token: 'token', status: 410, frame, at: 1000 });
  assert.equal(t.take('1.a', 'token'), undefined);
});

test('a session that goes on with a new carrier forgets its tombstone', () => {
  const t = new PollTombstones();
  t.keep('1.a', 'token', 410, frame, 1000);
  t.forget('1.a');
  assert.equal(t.take('1.a', 'token'), undefined);
});

test('tombstones expire by age and are bounded in number, oldest first', () => {
  const t = new PollTombstones();
  t.keep('1.a', 'x', 410, frame, 1000);
  t.keep('2.a', 'x', 410, frame, 2000);
  t.expire(2500, 1000); // 1.a is 1500 ms old
  assert.equal(t.size, 1);
  assert.notEqual(t.take('2.a', 'x'), undefined);

  for (let i = 0; i < MAX_TOMBSTONES; i++) t.keep(`${i}.s`, 'x', 410, frame, i);
  t.keep('new.s', 'x', 410, frame, MAX_TOMBSTONES);
  assert.equal(t.size, MAX_TOMBSTONES);
  assert.equal(t.take('0.s', 'x'), undefined);
  assert.notEqual(t.take('1.s', 'x'), undefined);
  assert.notEqual(t.take('new.s', 'x'), undefined);
});

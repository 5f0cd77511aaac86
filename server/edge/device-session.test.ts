import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DeviceSession } from './device-session.ts';
import { MAX_ANSWERED_IDS } from './limits.ts';

test('sequencing, acks (clamped) and lazily dropped replay state', () => {
  const s = new DeviceSession('356938035643809.abc', '356938035643809', 'token');
  assert.equal(s.append(new Uint8Array([1])), 1);
  assert.equal(s.append(new Uint8Array([2, 2])), 2);
  assert.equal(s.lastSeq, 2);
  assert.equal(s.replayBytes, 3);
  s.ack(1);
  assert.equal(s.frameAt(1), undefined);
  assert.deepEqual(s.frameAt(2), new Uint8Array([2, 2]));
  s.ack(99); // beyond what was assigned: clamped
  assert.equal(s.ackedSeq, 2);
  assert.equal(s.replayFrames, 0);
  assert.equal(s.append(new Uint8Array([3])), 3);
});

test('answered ids are an LRU bounded at MAX_ANSWERED_IDS', () => {
  const s = new DeviceSession('x.y', 'x', 't');
  for (let i = 0; i <= MAX_ANSWERED_IDS; i++) s.rememberAnswer(`id${i}`, i + 1);
  assert.equal(s.answerSeq('id0'), undefined);
  assert.equal(s.answerSeq('id1'), 2);
  s.rememberAnswer('id1', 2); // refreshed: now the newest
  s.rememberAnswer('new', 5000);
  assert.equal(s.answerSeq('id1'), 2);
  assert.equal(s.answerSeq('id2'), undefined);
});

test('snapshot round trip rebuilds seqs, unacked frames and answers; malformed snapshots are refused', () => {
  const s = new DeviceSession('356938035643809.abc', '356938035643809', 'token');
  for (let i = 1; i <= 5; i++) s.append(new Uint8Array([i]));
  s.ack(2);
  s.rememberAnswer('r1', 4);
  s.startRequest('r9');
  const snap = s.snapshot();
  assert.equal(snap.firstSeq, 3);
  assert.equal(snap.frames.length, 3);
  const copy = DeviceSession.fromSnapshot(structuredClone(snap));
  assert.equal(copy.lastSeq, 5);
  assert.equal(copy.ackedSeq, 2);
  assert.deepEqual(copy.frameAt(4), new Uint8Array([4]));
  assert.equal(copy.answerSeq('r1'), 4);
  assert.equal(copy.isInflight('r9'), false);
  assert.throws(() => DeviceSession.fromSnapshot({ ...snap, nextSeq: 99 }), TypeError);
  assert.throws(
    () =>
      DeviceSession.fromSnapshot({
        ...snap,
        frames: ['x' as unknown as Uint8Array, ...snap.frames.slice(1)],
      }),
    TypeError,
  );
  assert.throws(() => DeviceSession.fromSnapshot(null as never), TypeError);
});

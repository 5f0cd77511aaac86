import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ReplayBuffer } from './replay-buffer.ts';

const frame = (n: number) => new Uint8Array(n).fill(n % 256);

test('push, get and cumulative ack keep seq order and byte count', () => {
  const rb = new ReplayBuffer(5);
  for (let seq = 5; seq < 105; seq++) rb.push(seq, frame(seq));
  assert.equal(rb.length, 100);
  assert.equal(rb.nextSeq, 105);
  assert.equal(rb.get(4), undefined);
  assert.equal(rb.get(105), undefined);
  assert.equal(rb.get(50)?.length, 50);
  rb.ackThrough(80);
  assert.equal(rb.oldestSeq, 81);
  assert.equal(rb.length, 24);
  assert.equal(rb.get(80), undefined);
  assert.equal(rb.get(81)?.length, 81);
  let bytes = 0;
  for (let seq = 81; seq < 105; seq++) bytes += seq;
  assert.equal(rb.bytes, bytes);
  assert.deepEqual(
    rb.toArray().map((f) => f.length),
    Array.from({ length: 24 }, (_, i) => 81 + i),
  );
  rb.ackThrough(70); // older ack: nothing
  assert.equal(rb.length, 24);
  rb.ackThrough(1000);
  assert.equal(rb.length, 0);
  assert.equal(rb.bytes, 0);
  assert.equal(rb.nextSeq, 105);
  rb.push(105, frame(1));
  assert.equal(rb.get(105)?.length, 1);
});

test('a push out of order is refused', () => {
  const rb = new ReplayBuffer(1);
  rb.push(1, frame(1));
  assert.throws(() => rb.push(3, frame(1)), RangeError);
});

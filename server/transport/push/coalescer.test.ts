import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type CoalescerClock, WakeCoalescer, type WakeTally } from './coalescer.ts';

/** A clock whose timers run only when the test moves time on. */
function manualClock() {
  let now = 1_000_000;
  let next = 0;
  const timers = new Map<number, { at: number; fn: () => void }>();
  const clock: CoalescerClock = {
    now: () => now,
    setTimer(fn, ms) {
      const id = ++next;
      timers.set(id, { at: now + ms, fn });
      return id;
    },
    clearTimer: (id) => void timers.delete(id as number),
  };
  return {
    clock,
    pending: () => timers.size,
    advance(ms: number) {
      now += ms;
      for (const [id, t] of [...timers].sort((a, b) => a[1].at - b[1].at)) {
        if (t.at > now) continue;
        timers.delete(id);
        t.fn();
      }
    },
  };
}

function rig(intervalMs = 30_000, maxDevices?: number) {
  const time = manualClock();
  const sent: { deviceId: string; tally: WakeTally; at: number }[] = [];
  const coalescer = new WakeCoalescer({
    intervalMs,
    clock: time.clock,
    ...(maxDevices === undefined ? {} : { maxDevices }),
    send: (deviceId, tally) => sent.push({ deviceId, tally, at: time.clock.now() }),
  });
  return { time, sent, coalescer };
}

test('the first missed item wakes at once; more within the interval go as one trailing wake-up with the whole count', () => {
  const { time, sent, coalescer } = rig(30_000);
  coalescer.note('d1', 'mail');
  assert.equal(sent.length, 1);
  assert.deepEqual(sent[0]!.tally, { mail: 1, chat: 0, kind: 'mail', since: 1_000_000 });

  time.advance(5_000);
  coalescer.note('d1', 'mail');
  time.advance(5_000);
  coalescer.note('d1', 'chat', 2);
  assert.equal(sent.length, 1, 'nothing more within the interval');

  time.advance(19_999);
  assert.equal(sent.length, 1, 'not one ms early');
  time.advance(1);
  assert.equal(sent.length, 2);
  assert.deepEqual(sent[1]!.tally, { mail: 2, chat: 2, kind: 'chat', since: 1_005_000 });
  assert.equal(sent[1]!.at, 1_030_000);

  time.advance(60_000);
  assert.equal(sent.length, 2, 'no wake-up without news');
  coalescer.note('d1', 'mail');
  assert.equal(sent.length, 3, 'news after a quiet interval wakes at once');
  assert.deepEqual(sent[2]!.tally, { mail: 3, chat: 2, kind: 'mail', since: 1_090_000 });
});

test('devices are coalesced apart; a device back resets its count and its interval', () => {
  const { time, sent, coalescer } = rig(10_000);
  coalescer.note('a', 'mail');
  coalescer.note('b', 'chat');
  coalescer.note('a', 'mail');
  assert.deepEqual(
    sent.map((s) => [s.deviceId, s.tally.mail + s.tally.chat]),
    [
      ['a', 1],
      ['b', 1],
    ],
  );
  coalescer.reset('a');
  assert.equal(time.pending(), 0, 'the trailing timer of a went with it');
  coalescer.note('a', 'chat');
  assert.equal(sent.length, 3);
  assert.deepEqual(sent[2]!.tally, { mail: 0, chat: 1, kind: 'chat', since: 1_000_000 });
  time.advance(10_000);
  assert.equal(sent.length, 3, 'nothing was waiting');
});

test('zero or negative counts do nothing; the number of devices tracked is bounded', () => {
  const { sent, coalescer } = rig(10_000, 2);
  coalescer.note('a', 'mail', 0);
  coalescer.note('a', 'mail', -3);
  assert.equal(sent.length, 0);
  assert.equal(coalescer.size, 0);
  coalescer.note('a', 'mail');
  coalescer.note('b', 'mail');
  coalescer.note('c', 'mail');
  assert.equal(coalescer.size, 2);
  // a was forgotten: its next item wakes it at once, as a device seen for the first time.
  coalescer.note('a', 'mail');
  assert.equal(sent.filter((s) => s.deviceId === 'a').length, 2);
  coalescer.close();
  assert.equal(coalescer.size, 0);
});

test('a wake-up carries the newest item’s preview; one whose newest item has none carries none', () => {
  const { time, sent, coalescer } = rig(30_000);
  coalescer.note('d1', 'mail', 1, { from: 'Alice', subject: 'first' });
  assert.deepEqual(sent[0]!.tally.preview, { from: 'Alice', subject: 'first' });
  coalescer.note('d1', 'mail', 1, { from: 'Bob', subject: 'second' });
  coalescer.note('d1', 'chat', 1, { from: 'carol@x.test' });
  time.advance(30_000);
  assert.deepEqual(sent[1]!.tally.preview, { from: 'carol@x.test' });
  coalescer.note('d1', 'chat', 1, { from: 'dave@x.test' });
  coalescer.note('d1', 'mail', 1);
  time.advance(30_000);
  assert.equal(sent.length, 3);
  assert.equal(sent[2]!.tally.preview, undefined, 'an older item’s sender is not shown as the newest’s');
});

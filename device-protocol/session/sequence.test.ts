import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { SessionEffect } from '../handset-types.ts';
import { Kind, type SequencedFrame } from '../messages.ts';
import { SessionEffects } from './effects.ts';
import { ACK_EVERY_FRAMES, GAP_PATIENCE_MS, MAX_FRAMES_AHEAD, SequenceTracker } from './sequence.ts';

const event = (seq: number): SequencedFrame => ({ kind: Kind.Event, seq, name: 'e' });

function setup(live = true) {
  const fx = new SessionEffects();
  const out: SessionEffect[] = fx.begin();
  const delivered: number[] = [];
  const acks: number[] = [];
  const gaveUp: string[] = [];
  const state = { live };
  const seq = new SequenceTracker(
    {
      timers: fx,
      now: () => 100,
      live: () => state.live,
      sendAck: (n) => acks.push(n),
      deliver: (f) => delivered.push(f.seq),
      giveUp: (reason) => gaveUp.push(reason),
    },
    1_000,
  );
  /** Fires `timer` if it is armed, as the shell would. */
  const fire = (timer: 'ack' | 'gap') => {
    if (!fx.fired(timer)) return false;
    if (timer === 'ack') seq.onAckTimer();
    else seq.onGapTimer();
    return true;
  };
  return { fx, out, seq, delivered, acks, gaveUp, fire, state };
}

describe('SequenceTracker', () => {
  test('delivers in seq order, holding what comes beyond a gap until it fills', () => {
    const { seq, delivered, fx, out } = setup();
    seq.onFrame(event(1));
    seq.onFrame(event(3));
    seq.onFrame(event(4));
    assert.deepEqual(delivered, [1]);
    assert.ok(out.some((e) => e.type === 'schedule' && e.timer === 'gap' && e.at === 100 + GAP_PATIENCE_MS));
    seq.onFrame(event(2));
    assert.deepEqual(delivered, [1, 2, 3, 4]);
    assert.equal(seq.lastSeq, 4);
    assert.equal(fx.armed('gap'), false, 'the gap filled');
  });

  test('a replay is dropped but acked again, even with nothing new', () => {
    const { seq, delivered, acks, fire } = setup();
    seq.onFrame(event(1));
    assert.equal(fire('ack'), true);
    assert.deepEqual(acks, [1]);
    seq.onFrame(event(1));
    assert.equal(fire('ack'), true);
    assert.deepEqual(delivered, [1]);
    assert.deepEqual(acks, [1, 1]);
  });

  test(`acks at once after ${ACK_EVERY_FRAMES} frames, else when the ack timer fires`, () => {
    const { seq, acks, fx } = setup();
    for (let n = 1; n < ACK_EVERY_FRAMES; n++) seq.onFrame(event(n));
    assert.deepEqual(acks, []);
    assert.equal(fx.armed('ack'), true);
    seq.onFrame(event(ACK_EVERY_FRAMES));
    assert.deepEqual(acks, [ACK_EVERY_FRAMES]);
    assert.equal(fx.armed('ack'), false);
  });

  test('no ack goes out while the carrier is not live', () => {
    const { seq, acks, fx, state } = setup(false);
    seq.onFrame(event(1));
    assert.equal(fx.armed('ack'), false);
    state.live = true;
    seq.flush();
    assert.deepEqual(acks, [1]);
    seq.flush();
    assert.deepEqual(acks, [1], 'nothing new');
  });

  test('a gap that does not fill gives the carrier up, once the timer fires or too much is held', () => {
    const a = setup();
    a.seq.onFrame(event(2));
    assert.equal(a.fire('gap'), true);
    assert.deepEqual(a.gaveUp, ['seq 1 did not come']);
    const b = setup();
    for (let n = 2; n < MAX_FRAMES_AHEAD + 2; n++) b.seq.onFrame(event(n));
    assert.deepEqual(b.gaveUp, []);
    b.seq.onFrame(event(MAX_FRAMES_AHEAD + 2));
    assert.deepEqual(b.gaveUp, ['frames ahead of seq 1 never came']);
    b.seq.stop();
    assert.equal(b.fire('gap'), false, 'stop cancels the gap timer');
    b.seq.onFrame(event(1));
    assert.deepEqual(b.delivered, [1], 'stop dropped what was held');
  });

  test("the carrier's own acks count only up to what was delivered; Resume acks everything", () => {
    const { seq, acks, fx, fire } = setup();
    seq.onFrame(event(1));
    seq.onFrame(event(2));
    seq.carrierAcked(5);
    assert.equal(fx.armed('ack'), true);
    seq.carrierAcked(2);
    assert.equal(fx.armed('ack'), false);
    seq.onFrame(event(3));
    seq.resuming();
    assert.equal(fire('ack'), false);
    seq.flush();
    assert.deepEqual(acks, []);
  });

  test('reset starts a new session at seq 0', () => {
    const { seq, delivered } = setup();
    seq.onFrame(event(1));
    seq.onFrame(event(3));
    seq.reset();
    assert.equal(seq.lastSeq, 0);
    seq.onFrame(event(1));
    seq.onFrame(event(2));
    assert.deepEqual(delivered, [1, 1, 2]);
  });
});

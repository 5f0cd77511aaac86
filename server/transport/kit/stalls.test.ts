import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Stalls } from './stalls.ts';

function fakeClock() {
  let t = 1_000_000;
  let tick: () => void = () => {};
  return {
    clock: {
      now: () => t,
      every: (_ms: number, fn: () => void) => {
        tick = fn;
        return {};
      },
    },
    /** Time passes in 250 ms ticks, each one firing the timer. */
    run(ms: number) {
      for (let i = 0; i < ms / 250; i++) {
        t += 250;
        tick();
      }
    },
    /** The process is paused: time passes, no tick fires. */
    pause(ms: number) {
      t += ms;
    },
    get t() {
      return t;
    },
  };
}

test('a pause is noted when the timer fires late; the longest since a time is answered', () => {
  const c = fakeClock();
  const stalls = new Stalls(c.clock);
  c.run(2000);
  const before = c.t;
  assert.equal(stalls.longestSince(before), 0, 'ticks on time: no pause');
  c.pause(30_000);
  assert.ok(stalls.longestSince(before) >= 29_000, 'the pause under way counts before its tick');
  c.run(1000);
  const after = c.t;
  assert.ok(stalls.longestSince(before) >= 29_000);
  assert.equal(stalls.longestSince(after), 0, 'nothing since the pause ended');
  c.pause(600);
  c.run(250);
  assert.ok(stalls.longestSince(after) >= 500 && stalls.longestSince(after) < 1000);
});

test('pauses older than ten minutes are forgotten', () => {
  const c = fakeClock();
  const stalls = new Stalls(c.clock);
  const start = c.t;
  c.pause(5000);
  c.run(250);
  c.run(11 * 60_000);
  assert.equal(stalls.longestSince(start), 0);
});

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { SessionEffect } from '../handset-types.ts';
import { SessionEffects } from './effects.ts';
import { DEAD_AFTER_HEARTBEATS, Heartbeat } from './heartbeat.ts';

function setup() {
  const fx = new SessionEffects();
  const out: SessionEffect[] = fx.begin();
  const clock = { now: 0 };
  const beat = new Heartbeat(fx, () => clock.now);
  const schedules = () => out.flatMap((e) => (e.type === 'schedule' ? [e.at] : []));
  return { fx, clock, beat, schedules };
}

describe('Heartbeat', () => {
  test('anything but a positive heartbeat turns it off', () => {
    for (const ms of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
      const { beat, schedules } = setup();
      beat.start(ms);
      assert.deepEqual(schedules(), [], String(ms));
      assert.equal(
        beat.tick(() => assert.fail('no ping')),
        undefined,
      );
    }
  });

  test('pings every heartbeat while the gateway answers', () => {
    const { beat, clock, schedules } = setup();
    let pings = 0;
    beat.start(1_000);
    clock.now = 1_000;
    assert.equal(
      beat.tick(() => pings++),
      undefined,
    );
    assert.equal(pings, 1);
    clock.now = 1_100;
    beat.heard();
    clock.now = 2_000;
    assert.equal(
      beat.tick(() => pings++),
      undefined,
    );
    assert.equal(pings, 2);
    assert.deepEqual(schedules(), [1_000, 2_000, 3_000]);
  });

  test(`a carrier silent for ${DEAD_AFTER_HEARTBEATS} heartbeats is dead, found at the deadline`, () => {
    const { beat, clock, schedules } = setup();
    beat.start(1_000);
    // A late tick: the next Ping is due at 2500, but the silence deadline (2000) comes first.
    clock.now = 1_500;
    beat.tick(() => {});
    clock.now = 2_000;
    assert.equal(
      beat.tick(() => assert.fail('dead, not due')),
      'nothing heard for 2× 1000 ms',
    );
    assert.deepEqual(schedules(), [1_000, 2_000]);
  });

  test('stop cancels the timer', () => {
    const { beat, fx } = setup();
    beat.start(1_000);
    beat.stop();
    assert.equal(fx.armed('heartbeat'), false);
  });
});

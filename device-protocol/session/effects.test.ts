import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { SessionEffects } from './effects.ts';

describe('SessionEffects', () => {
  test('a cancel goes out only for an armed timer, and a timer fires once', () => {
    const fx = new SessionEffects();
    const out = fx.begin();
    fx.cancel('ack');
    fx.schedule('ack', 10);
    assert.equal(fx.armed('ack'), true);
    fx.cancel('ack');
    fx.cancel('ack');
    fx.schedule(7, 20);
    assert.deepEqual(out, [
      { type: 'schedule', timer: 'ack', at: 10 },
      { type: 'cancel', timer: 'ack' },
      { type: 'schedule', timer: 7, at: 20 },
    ]);
    assert.equal(fx.fired('ack'), false, 'a cancelled timer is stale');
    assert.equal(fx.fired(7), true);
    assert.equal(fx.fired(7), false, 'a timer fires once');
  });

  test('each step starts a new list; armed timers carry over', () => {
    const fx = new SessionEffects();
    const first = fx.begin();
    fx.schedule('gap', 1);
    const second = fx.begin();
    fx.resolve(1, 'x');
    fx.close(3);
    assert.equal(first.length, 1);
    assert.deepEqual(second, [
      { type: 'resolve', call: 1, value: 'x' },
      { type: 'close', carrier: 3 },
    ]);
    assert.equal(fx.armed('gap'), true);
  });
});

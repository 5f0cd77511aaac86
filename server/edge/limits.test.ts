import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULT_EDGE_LIMITS, resolveEdgeLimits, takeToken } from './limits.ts';

test('token bucket: a burst, then the sustained rate', () => {
  const limits = { ...DEFAULT_EDGE_LIMITS, maxFramesPerSecond: 10, burstFrames: 5 };
  const state = { tokens: 5, tokensAt: 0 };
  for (let i = 0; i < 5; i++) assert.equal(takeToken(state, limits, 0), true);
  assert.equal(takeToken(state, limits, 0), false);
  assert.equal(takeToken(state, limits, 50), false); // half a token
  assert.equal(takeToken(state, limits, 100), true); // one token per 100 ms
  assert.equal(takeToken(state, limits, 100), false);
  // A long pause refills to the burst, not beyond.
  let n = 0;
  while (takeToken(state, limits, 60_000)) n++;
  assert.equal(n, 5);
});

test('limits: defaults, overrides, and refusal of nonsense', () => {
  assert.deepEqual(resolveEdgeLimits(undefined), DEFAULT_EDGE_LIMITS);
  assert.equal(resolveEdgeLimits({ maxFrameBytes: 1024 }).maxFrameBytes, 1024);
  assert.throws(() => resolveEdgeLimits({ maxQueuedBytes: -1 }), RangeError);
  assert.throws(() => resolveEdgeLimits({ burstFrames: Number.NaN }), RangeError);
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  DEFAULT_EDGE_LIMITS,
  defaultMaxUnauthenticated,
  openFileLimit,
  resolveEdgeLimits,
  takeToken,
  takeTokenOf,
} from './limits.ts';

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

test('a new bucket (tokens Infinity) is full whatever its size, also at time 0', () => {
  const state = { tokens: Number.POSITIVE_INFINITY, tokensAt: 0 };
  let n = 0;
  while (takeTokenOf(state, 3, 1, 0)) n++;
  assert.equal(n, 3);
});

test('limits: defaults, overrides, and refusal of nonsense', () => {
  assert.deepEqual(resolveEdgeLimits(undefined, 20_000), {
    ...DEFAULT_EDGE_LIMITS,
    maxUnauthenticated: 5000,
  });
  assert.equal(resolveEdgeLimits({ maxFrameBytes: 1024 }).maxFrameBytes, 1024);
  assert.equal(resolveEdgeLimits({ maxUnauthenticated: 7 }, 20_000).maxUnauthenticated, 7);
  assert.throws(() => resolveEdgeLimits({ maxQueuedBytes: -1 }), RangeError);
  assert.throws(() => resolveEdgeLimits({ burstFrames: Number.NaN }), RangeError);
  assert.throws(() => resolveEdgeLimits({ helloTimeoutMs: 0 }), RangeError);
});

test('unauthenticated connections in all: a quarter of the open-file limit, read from /proc/self/limits', () => {
  const text = [
    'Limit                     Soft Limit           Hard Limit           Units     ',
    'Max processes             63451                63451                processes ',
    'Max open files            20000                1048576              files     ',
  ].join('\n');
  assert.equal(openFileLimit(text), 20_000);
  assert.equal(defaultMaxUnauthenticated(20_000), 5000);
  assert.equal(openFileLimit(text.replace('20000', 'unlimited')), undefined);
  assert.equal(defaultMaxUnauthenticated(undefined), 10_000, 'unknown or unlimited: the fallback');
  // This process (Linux): whatever its limit is, the default is a quarter of it.
  const own = openFileLimit();
  if (own !== undefined) assert.equal(resolveEdgeLimits(undefined).maxUnauthenticated, Math.floor(own / 4));
});

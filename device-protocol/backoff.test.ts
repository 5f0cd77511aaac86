import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { backoffDelay } from './backoff.ts';

describe('backoffDelay', () => {
  test('grows by the factor, caps at maxMs, and jitters only downwards', () => {
    const opts = { initialMs: 100, maxMs: 1_000, factor: 2, jitter: 0.5 };
    assert.deepEqual(
      [0, 1, 2, 3, 4, 5].map((a) => backoffDelay(a, opts, () => 0)),
      [100, 200, 400, 800, 1_000, 1_000],
    );
    assert.deepEqual(
      [0, 1, 2, 3, 4].map((a) => backoffDelay(a, opts, () => 1)),
      [50, 100, 200, 400, 500],
    );
    assert.equal(
      backoffDelay(2, { ...opts, jitter: 0 }, () => 0.7),
      400,
    );
  });
});

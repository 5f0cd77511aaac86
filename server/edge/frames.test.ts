import assert from 'node:assert/strict';
import { test } from 'node:test';
import { drainJitterMs } from './frames.ts';

test('a drain Bye spreads the reconnects by the sessions held: 0.25 s to 5 s after 100 ms', () => {
  const range = (sessions: number) => {
    let lo = Number.POSITIVE_INFINITY;
    let hi = 0;
    for (let i = 0; i < 2000; i++) {
      const ms = drainJitterMs(sessions);
      lo = Math.min(lo, ms);
      hi = Math.max(hi, ms);
    }
    return { lo, hi };
  };
  const small = range(40);
  assert.ok(small.lo >= 100 && small.hi < 350, JSON.stringify(small));
  const mid = range(2000);
  assert.ok(mid.lo >= 100 && mid.hi < 2100 && mid.hi > 1000, JSON.stringify(mid));
  const big = range(100_000);
  assert.ok(big.lo >= 100 && big.hi < 5100 && big.hi > 4000, JSON.stringify(big));
});

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Rng } from './rng.ts';

const draws = (rng: Rng, n = 20) => Array.from({ length: n }, () => rng.next());

describe('Rng', () => {
  test('the same seed draws the same sequence; another seed another one', () => {
    assert.deepEqual(draws(new Rng(7)), draws(new Rng(7)));
    assert.notDeepEqual(draws(new Rng(7)), draws(new Rng(8)));
  });

  test('forks by label are independent of each other and of how much the parent drew', () => {
    const a = new Rng(7);
    const b = new Rng(7);
    draws(b, 100);
    assert.deepEqual(draws(a.fork('device-1')), draws(b.fork('device-1')));
    assert.notDeepEqual(draws(a.fork('device-1')), draws(a.fork('device-2')));
  });

  test('int stays in its bounds and reaches both ends', () => {
    const rng = new Rng(1);
    const seen = new Set<number>();
    for (let i = 0; i < 2000; i++) {
      const n = rng.int(3, 6);
      assert.ok(n >= 3 && n <= 6, String(n));
      seen.add(n);
    }
    assert.deepEqual([...seen].sort(), [3, 4, 5, 6]);
  });

  test('weighted never picks a zero weight and follows the weights', () => {
    const rng = new Rng(2);
    const counts = { a: 0, b: 0, c: 0 };
    for (let i = 0; i < 4000; i++)
      counts[
        rng.weighted([
          ['a', 3],
          ['b', 1],
          ['c', 0],
        ] as const)
      ]++;
    assert.equal(counts.c, 0);
    assert.ok(counts.a > 2 * counts.b, JSON.stringify(counts));
  });

  test('seedForSample is a 32-bit signed integer', () => {
    const rng = new Rng(3);
    for (let i = 0; i < 100; i++) {
      const s = rng.seedForSample();
      assert.equal(s, s | 0);
    }
  });
});

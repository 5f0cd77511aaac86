import assert from 'node:assert/strict';
import { test } from 'node:test';
import { attemptWorthWarning, openInBackground, rangeOf, type SharedEntry, take } from './table.ts';

const keys = ['a', 'b/1', 'b/2', 'b/3', 'c'];
const lookup = (key: string): SharedEntry<number> => ({ key, value: key.length, revision: 1 });

test('rangeOf walks a prefix, after a key, and stops at the end of the prefix', () => {
  const walk = (o: { prefix?: string; after?: string }) => [...rangeOf(keys, lookup, o)].map((e) => e.key);
  assert.deepEqual(walk({ prefix: 'b/' }), ['b/1', 'b/2', 'b/3']);
  assert.deepEqual(walk({ prefix: 'b/', after: 'b/1' }), ['b/2', 'b/3']);
  assert.deepEqual(walk({ after: 'b/3' }), ['c']);
  assert.deepEqual(walk({ prefix: 'b/', after: 'a' }), ['b/1', 'b/2', 'b/3']);
  assert.deepEqual(walk({ prefix: 'x' }), []);
  assert.deepEqual(walk({}), keys);
});

test('take stops at the limit and takes nothing for a limit of 0', () => {
  assert.deepEqual(take([1, 2, 3], 2), [1, 2]);
  assert.deepEqual(take([1, 2, 3], 0), []);
  assert.deepEqual(take([1, 2, 3], undefined), [1, 2, 3]);
});

test('openInBackground: retries back off to at most 5 s, then opens; a warning about once a minute', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const delays: number[] = [];
  let now = 0;
  let lastTry = 0;
  let failures = 8;
  const opened: string[] = [];
  const failed: number[] = [];
  openInBackground(
    async () => {
      delays.push(now - lastTry);
      lastTry = now;
      if (failures-- > 0) throw new Error('JetStream not there');
      return 'tables';
    },
    { opened: (v) => opened.push(v), failed: (_err, attempt) => failed.push(attempt) },
  );
  for (let i = 0; i < 600 && opened.length === 0; i += 1) {
    await new Promise((resolve) => setImmediate(resolve));
    now += 100;
    t.mock.timers.tick(100);
  }
  assert.deepEqual(opened, ['tables']);
  assert.deepEqual(failed, [1, 2, 3, 4, 5, 6, 7, 8]);
  // The first try at once; then 0.5, 1, 2, 4 s and the cap.
  assert.deepEqual(delays, [0, 500, 1000, 2000, 4000, 5000, 5000, 5000, 5000]);
  assert.deepEqual(
    [1, 2, 11, 12, 13, 24].map((a) => attemptWorthWarning(a)),
    [true, false, false, true, false, true],
  );
});

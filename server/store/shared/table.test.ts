import assert from 'node:assert/strict';
import { test } from 'node:test';
import { rangeOf, type SharedEntry, take } from './table.ts';

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

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MIME_LIMITS, structureWithinLimits, tooComplex } from './mime-limits.ts';

type Node = { childNodes?: Node[] };
const nested = (depth: number): Node => {
  let node: Node = {};
  for (let i = 0; i < depth; i++) node = { childNodes: [node] };
  return node;
};
const wide = (parts: number): Node => ({ childNodes: Array.from({ length: parts - 1 }, () => ({})) });

test('structures at the limits pass, one past them does not; no structure is too complex', () => {
  assert.equal(structureWithinLimits(nested(MIME_LIMITS.depth)), true);
  assert.equal(structureWithinLimits(nested(MIME_LIMITS.depth + 1)), false);
  assert.equal(structureWithinLimits(wide(MIME_LIMITS.parts)), true);
  assert.equal(structureWithinLimits(wide(MIME_LIMITS.parts + 1)), false);
  assert.equal(structureWithinLimits(nested(100_000)), false, 'deep input: no stack overflow');
  assert.equal(structureWithinLimits(undefined), false);
});

test('mail.too_complex: final for a complex message, retryable when the workers were busy', () => {
  const e = tooComplex();
  assert.equal(e.code, 'mail.too_complex');
  assert.equal(e.retryable, false);
  assert.equal(tooComplex('part', true).retryable, true);
});

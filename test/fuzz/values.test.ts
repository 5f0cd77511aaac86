import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { encodeValue } from '../../device-protocol/codec.ts';
import type { Value } from '../../device-protocol/messages.ts';
import { describeValue, EDGE_NUMBERS, EDGE_STRINGS, MAX_DEPTH, nested, setOwn, showValue } from './values.ts';

describe('fuzz values', () => {
  test('every edge string and number goes through the codec (they reach the gateway)', () => {
    for (const s of EDGE_STRINGS) encodeValue(s);
    for (const n of EDGE_NUMBERS) encodeValue(n);
  });

  test('nested: the codec takes a body MAX_DEPTH deep and refuses one level more', () => {
    encodeValue(nested(MAX_DEPTH - 1, 1) as Value);
    assert.throws(() => encodeValue(nested(MAX_DEPTH + 1, 1) as Value), { code: 'protocol.limit' });
    assert.deepEqual(nested(2, 'x', true), { a: { a: 'x' } });
  });

  test('setOwn makes __proto__ an own field that the codec carries, not the prototype', () => {
    const o: Record<string, unknown> = {};
    setOwn(o, '__proto__', { polluted: true });
    assert.deepEqual(Object.keys(o), ['__proto__']);
    assert.equal(Object.getPrototypeOf(o), Object.prototype);
    assert.ok(encodeValue(o as Value).length > 10);
  });

  test('describeValue cuts long strings and lists, names bytes and non-JSON numbers', () => {
    const d = describeValue({
      s: 'x'.repeat(1000),
      b: new Uint8Array(40),
      n: Number.NaN,
      z: -0,
      l: new Array(30).fill(1),
    }) as any;
    assert.match(d.s, /…\(1000 chars\)$/);
    assert.match(d.b, /^\(40 bytes: 0{32}…\)$/);
    assert.equal(d.n, 'NaN');
    assert.equal(d.z, '-0');
    assert.equal(d.l.length, 13);
    assert.equal(d.l[12], '…(30 entries)');
    assert.equal(describeValue(undefined), '(absent)');
    assert.ok(showValue({ s: 'y'.repeat(5000) }, 50).length <= 51);
  });
});

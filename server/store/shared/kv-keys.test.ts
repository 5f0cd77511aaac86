import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GatewayError } from '../../../device-protocol/errors.ts';
import { decodeKvKey, encodeKvKey } from './kv-keys.ts';

test('KV keys: only subject-safe characters, round trip, prefixes stay prefixes', () => {
  for (const key of ['356938035643809', 'operator/acme', 'a.b', '=', 'ü:@ x', 'dev/', '😀']) {
    const encoded = encodeKvKey(key);
    assert.match(encoded, /^[A-Za-z0-9_=-]+$/, key);
    assert.equal(decodeKvKey(encoded), key);
  }
  assert.ok(encodeKvKey('dev/12').startsWith(encodeKvKey('dev/1')));
  assert.ok(encodeKvKey('a=b').startsWith(encodeKvKey('a=')));
});

test('KV keys written by someone else are refused with a typed error', () => {
  for (const bad of ['a.b', '=G1', '=ff', 'a b', '=C3']) {
    assert.throws(
      () => decodeKvKey(bad),
      (e) => e instanceof GatewayError && e.code === 'registry.bad_record',
      bad,
    );
  }
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { clusteredCasExact } from './nats-kv.ts';

test('compare-and-set on replicated buckets is exact from nats-server 2.9.21 on (#4320)', () => {
  for (const v of ['2.9.10', 'v2.9.20', '2.8.4', '1.4.1', 'nonsense'])
    assert.equal(clusteredCasExact(v), false, v);
  for (const v of ['2.9.21', 'v2.10.0', '2.11.3-beta', '3.0.0']) assert.equal(clusteredCasExact(v), true, v);
});

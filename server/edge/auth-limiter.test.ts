import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AuthLimiter } from './auth-limiter.ts';

test('failures of one (address, IMEI) empty its bucket; it refills at the rate per minute; successes cost nothing', () => {
  const l = new AuthLimiter();
  let now = 1_000_000;
  for (let i = 0; i < 10; i++) {
    assert.equal(l.check('A', '10.0.0.1', now), 0);
    l.fail('A', '10.0.0.1', now);
  }
  const wait = l.check('A', '10.0.0.1', now);
  assert.equal(wait, 6000, '10 a minute: one token every 6 s');
  // Another device from the same address is not limited by A's failures.
  assert.equal(l.check('B', '10.0.0.1', now), 0);
  now += wait;
  assert.equal(l.check('A', '10.0.0.1', now), 0);
  // Checks alone (successful attempts) never take a token.
  for (let i = 0; i < 1000; i++) assert.equal(l.check('C', '10.0.0.2', now), 0);
});

test('failures from one address do not limit the same IMEI from another address', () => {
  const l = new AuthLimiter();
  for (let i = 0; i < 50; i++) l.fail('A', '10.0.0.2', 0);
  assert.ok(l.check('A', '10.0.0.2', 0) > 0);
  assert.equal(l.check('A', '10.0.0.3', 0), 0);
  assert.equal(l.check('A', '', 0), 0);
});

test('the address bucket limits failures over many devices, sized for a carrier NAT by default', () => {
  const l = new AuthLimiter({ perAddressPerMinute: 5 });
  for (let i = 0; i < 5; i++) l.fail(`D${i}`, '10.0.0.9', 0);
  assert.ok(l.check('fresh', '10.0.0.9', 0) > 0);
  assert.equal(l.check('fresh', '10.0.0.10', 0), 0);
  const nat = new AuthLimiter();
  for (let i = 0; i < 999; i++) nat.fail(`D${i}`, '10.0.0.9', 0);
  assert.equal(nat.check('fresh', '10.0.0.9', 0), 0, '999 failures of distinct IMEIs: still open');
  nat.fail('D999', '10.0.0.9', 0);
  assert.equal(nat.check('fresh', '10.0.0.9', 0), 60, '1,000 a minute: one token every 60 ms');
});

test('memory is bounded: the least recently failed buckets go first', () => {
  const l = new AuthLimiter({ maxEntries: 100 });
  for (let i = 0; i < 10_000; i++) l.fail(`imei-${i}`, `addr-${i}`, 0);
  assert.deepEqual(l.size, { pairs: 100, addresses: 100 });
});

test('a bucket that refilled completely is forgotten', () => {
  const l = new AuthLimiter();
  l.fail('A', 'x', 0);
  assert.equal(l.size.pairs, 1);
  assert.equal(l.check('A', 'x', 60_000), 0);
  assert.equal(l.size.pairs, 0);
});

test('bad options are refused', () => {
  assert.throws(() => new AuthLimiter({ perDevicePerMinute: 0 }), RangeError);
});

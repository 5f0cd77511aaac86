import assert from 'node:assert/strict';
import { test } from 'node:test';
import { addressKey, PreAuthGate } from './pre-auth.ts';

test('address keys: IPv4 as is, IPv4-mapped IPv6 as IPv4, IPv6 by its /64', () => {
  assert.equal(addressKey('127.0.0.2'), '127.0.0.2');
  assert.equal(addressKey('::ffff:10.1.2.3'), '10.1.2.3');
  assert.equal(addressKey('2001:db8:0:1:aaaa::1'), '2001:db8:0:1::/64');
  assert.equal(addressKey('2001:DB8:0000:0001:ffff:1:2:3'), '2001:db8:0:1::/64');
  assert.equal(addressKey('2001:db8::1%eth0'), '2001:db8:0:0::/64');
  assert.equal(addressKey('::1'), '0:0:0:0::/64');
  assert.equal(addressKey(''), '');
  assert.equal(addressKey('not:an::address::x'), 'not:an::address::x', 'malformed: kept as it is');
});

test('connections are capped per address and in all, and leaving makes room', () => {
  const g = new PreAuthGate({
    maxUnauthenticatedPerAddress: 2,
    maxUnauthenticated: 3,
    preAuthFramesPerSecondPerAddress: 10,
  });
  const a1 = g.enter('a');
  g.enter('a');
  assert.equal(g.refusal('a'), 'address_cap');
  assert.equal(g.refusal('b'), undefined);
  g.enter('b');
  assert.equal(g.refusal('c'), 'total_cap');
  assert.equal(g.open, 3);
  g.leave(a1);
  g.leave(a1); // the entry still has one connection: leaving counts per call
  assert.equal(g.open, 1);
  assert.equal(g.refusal('a'), undefined);
  assert.equal(g.refusal('c'), undefined);
});

test('carriers of one address share one frame bucket: a new connection does not refill it', () => {
  const g = new PreAuthGate({
    maxUnauthenticatedPerAddress: 2,
    maxUnauthenticated: 100,
    preAuthFramesPerSecondPerAddress: 3,
  });
  let taken = 0;
  for (let i = 0; i < 10; i++) {
    const e = g.enter('a');
    while (g.takeFrame(e, 0)) taken++;
    g.leave(e);
  }
  assert.equal(taken, 3, 'the burst of the address, once');
  const e = g.enter('a');
  assert.equal(g.takeFrame(e, 333), false);
  assert.equal(g.takeFrame(e, 334), true, 'refilled at that many a second');
  assert.equal(g.takeFrame(g.enter('b'), 0), true, 'another address has its own');
});

test('memory is bounded: addresses without connections go first', () => {
  const g = new PreAuthGate(
    { maxUnauthenticatedPerAddress: 5, maxUnauthenticated: 1000, preAuthFramesPerSecondPerAddress: 5 },
    10,
  );
  const held = g.enter('held');
  for (let i = 0; i < 100; i++) g.leave(g.enter(`x${i}`));
  assert.equal(g.size, 10);
  assert.equal(g.refusal('held'), undefined);
  assert.equal(held.open, 1);
  assert.equal(g.open, 1);
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GatewayError } from '../../../../device-protocol/errors.ts';
import { accountAddress, bareJid, resourceOf, serviceFor } from './jid.ts';

test('bareJid normalises and rejects garbage', () => {
  assert.equal(bareJid('Alice@Example.TEST/phone'), 'alice@example.test');
  assert.equal(bareJid(undefined), '');
  assert.equal(bareJid('@@@/'), '');
});

test('bareJid answers the same from its cache, past its bound and for addresses too long to cache', () => {
  const cases: Array<[string, string]> = [
    ['Alice@Example.TEST/Phone', 'alice@example.test'],
    ['example.test', 'example.test'],
    ['a@b@c', ''],
    [`${'x'.repeat(300)}@example.test/r`, `${'x'.repeat(300)}@example.test`],
  ];
  for (let round = 0; round < 2; round++)
    for (const [address, bare] of cases) assert.equal(bareJid(address), bare, `${address} (round ${round})`);
  // More distinct addresses than the cache holds: still right after it starts over.
  for (let i = 0; i < 10_050; i++) assert.equal(bareJid(`U${i}@Example.test/r${i}`), `u${i}@example.test`);
  for (const [address, bare] of cases) assert.equal(bareJid(address), bare);
});

test('accountAddress takes a bare user@domain, normalised, and refuses anything else as bad input', () => {
  assert.deepEqual(accountAddress('Alice@Example.TEST'), {
    jid: 'alice@example.test',
    local: 'alice',
    domain: 'example.test',
  });
  // A full JID is cut to its bare part, as the account's address always was.
  assert.equal(accountAddress('alice@example.test/phone').jid, 'alice@example.test');
  for (const bad of ['example.test', '', '@@@/', 'a@b@c']) {
    assert.throws(
      () => accountAddress(bad),
      (err: unknown) =>
        err instanceof GatewayError && err.code === 'request.bad_input' && err.field === 'jid',
      bad,
    );
  }
});

test('resourceOf is the part after the slash, empty for a bare JID', () => {
  assert.equal(resourceOf('bob@example.test/phone/2'), 'phone/2');
  assert.equal(resourceOf('bob@example.test'), '');
});

test('serviceFor: an explicit host is a URI (IPv6 bracketed, port 5222 by default), else the domain', () => {
  assert.equal(serviceFor('example.test', 'xmpp.example.test', 5223), 'xmpp://xmpp.example.test:5223');
  assert.equal(serviceFor('example.test', '127.0.0.1'), 'xmpp://127.0.0.1:5222');
  assert.equal(serviceFor('example.test', '::1', 5222), 'xmpp://[::1]:5222');
  assert.equal(serviceFor('example.test'), 'example.test');
});

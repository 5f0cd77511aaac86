import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GatewayError } from '../../../device-protocol/errors.ts';
import { mapXmppError } from './xmpp-errors.ts';
import { bareJid, hasControlChars, sanitizeText } from './xmpp-session.ts';

const named = (name: string, extra: object) => Object.assign(new Error('x'), { name, ...extra });

test('XMPP failures map to distinct im.* codes', () => {
  assert.equal(mapXmppError(named('SASLError', { condition: 'not-authorized' })).code, 'im.auth_failed');
  assert.equal(
    mapXmppError(Object.assign(new Error('dns'), { code: 'ENOTFOUND' })).code,
    'im.unknown_domain',
  );
  assert.equal(mapXmppError(named('StreamError', { condition: 'host-unknown' })).code, 'im.unknown_domain');
  const refused = mapXmppError(Object.assign(new Error('refused'), { code: 'ECONNREFUSED' }));
  assert.equal(refused.code, 'im.unreachable');
  assert.equal(refused.retryable, true);
  assert.equal(mapXmppError(named('TimeoutError', {})).code, 'im.unreachable');
  assert.equal(mapXmppError(named('StanzaError', { condition: 'forbidden' })).code, 'im.server_error');
  const own = new GatewayError('im.bad_cursor');
  assert.equal(mapXmppError(own), own);
});

test('sanitizeText drops XML-illegal characters and cuts without splitting a surrogate pair', () => {
  assert.deepEqual(sanitizeText('a\u0000b\u0007c\td\n', 100), { text: 'abc\td\n', truncated: false });
  assert.deepEqual(sanitizeText('abcdef', 3), { text: 'abc', truncated: true });
  const cut = sanitizeText('ab\u{1F600}', 3);
  assert.equal(cut.text, 'ab');
  assert.equal(cut.truncated, true);
  assert.equal(hasControlChars('ok\ttext'), false);
  assert.equal(hasControlChars('bad\u0001'), true);
});

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

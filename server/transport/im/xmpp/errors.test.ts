import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GatewayError } from '../../../../device-protocol/errors.ts';
import { mapXmppError } from './errors.ts';

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

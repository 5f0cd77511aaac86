import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GatewayError } from '../../../../device-protocol/errors.ts';
import { mapXmppError, xmppErrorDetail } from './errors.ts';

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

const MARKER = 'SECRET-MARKER-0123456789abcdef';

test("no device-facing message carries the server's words, whatever the error", () => {
  const sent = [
    // A stream error's <text>, and a condition element the server made up.
    named('StreamError', { condition: 'host-unknown', text: MARKER, message: `host-unknown - ${MARKER}` }),
    named('StreamError', { condition: MARKER, message: MARKER }),
    // SASL failure text, and an invented condition.
    named('SASLError', { condition: 'not-authorized', text: MARKER, message: `not-authorized - ${MARKER}` }),
    named('SASLError', { condition: MARKER, message: MARKER }),
    named('StanzaError', { condition: MARKER, text: MARKER }),
    // The library's parser error echoes the text it choked on (an HTTP answer, headers, a cookie).
    named('XMLError', { message: `HTTP/1.1 200 OK\r\nSet-Cookie: session=${MARKER} must be a child.` }),
    new Error(`Illegal XML entity &${MARKER};`),
    // A certificate error names what the server's certificate holds.
    Object.assign(new Error(`Hostname/IP does not match certificate's altnames: DNS:${MARKER}`), {
      code: 'ERR_TLS_CERT_ALTNAME_INVALID',
    }),
    Object.assign(new Error(MARKER), { code: MARKER }),
    MARKER,
  ];
  for (const err of sent) {
    const g = mapXmppError(err);
    assert.ok(!JSON.stringify(g).includes('SECRET'), `${g.code}: ${g.message}`);
    assert.ok(!g.message.includes('SECRET'));
  }
  const sasl = mapXmppError(named('SASLError', { condition: 'not-authorized', text: MARKER }));
  assert.equal(sasl.message, 'XMPP authentication failed (not-authorized)');
  const tls = mapXmppError(Object.assign(new Error('x'), { code: 'ERR_TLS_CERT_ALTNAME_INVALID' }));
  assert.deepEqual(
    [tls.code, tls.message],
    ['im.unreachable', 'the TLS handshake with the XMPP server failed (ERR_TLS_CERT_ALTNAME_INVALID)'],
  );
  assert.equal(mapXmppError(named('XMLError', {})).code, 'im.server_error');
  assert.equal(mapXmppError(new Error('SASL: Mechanism undefined not found.')).code, 'im.unreachable');
});

test('the operator log gets the words, sanitised (no line breaks, no control characters) and cut', () => {
  const err = mapXmppError(
    named('XMLError', {
      message: `HTTP/1.1 200 OK\r\nSet-Cookie: session=${MARKER}\u0007\u2028${'x'.repeat(500)}`,
    }),
  );
  const detail = xmppErrorDetail(err);
  assert.ok(detail.includes(MARKER), 'the operator may see what the server sent');
  for (const c of ['\r', '\n', '\u0007', '\u2028']) assert.ok(!detail.includes(c), JSON.stringify(c));
  assert.ok(detail.length <= 201, `${detail.length} chars`);
  assert.ok(detail.startsWith('GatewayError im.server_error'));
  assert.equal(
    xmppErrorDetail(named('StreamError', { condition: 'conflict', text: 'replaced' })),
    'StreamError conflict x replaced',
  );
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  imapCommandError,
  mailConnectError,
  PEER_WORDS_MAX,
  peerWords,
  smtpSendError,
} from './mail-errors.ts';

const err = (props: Record<string, unknown>, message = 'x') => Object.assign(new Error(message), props);

test('connect errors map to the stable mail codes', () => {
  assert.equal(mailConnectError(err({ authenticationFailed: true }), 'imap').code, 'mail.auth_failed');
  assert.equal(mailConnectError(err({ code: 'EAUTH' }), 'smtp').code, 'mail.auth_failed');
  assert.equal(mailConnectError(err({ code: 'ECONNREFUSED' }), 'imap').code, 'mail.unreachable');
  assert.equal(mailConnectError(err({ code: 'CONNECT_TIMEOUT' }), 'imap').retryable, true);
  assert.equal(
    mailConnectError(err({ code: 'DEPTH_ZERO_SELF_SIGNED_CERT' }), 'imap').code,
    'mail.tls_failed',
  );
  assert.equal(
    mailConnectError(err({ code: 'ESOCKET' }, 'self-signed certificate'), 'smtp').code,
    'mail.tls_failed',
  );
  assert.equal(mailConnectError(err({ code: 'ETLS' }), 'smtp').code, 'mail.tls_failed');
  assert.equal(mailConnectError(err({}), 'imap').code, 'mail.server_error');
});

test('send errors: refused recipient, too large, transient and auth are distinct', () => {
  assert.equal(smtpSendError(err({ code: 'EENVELOPE', responseCode: 550 })).code, 'mail.recipient_refused');
  assert.equal(smtpSendError(err({ code: 'EENVELOPE', responseCode: 552 })).code, 'mail.too_large');
  assert.equal(smtpSendError(err({ code: 'EMESSAGE', responseCode: 552 })).code, 'mail.too_large');
  const transient = smtpSendError(err({ code: 'EMESSAGE', responseCode: 451 }));
  assert.equal(transient.code, 'mail.send_failed');
  assert.equal(transient.retryable, true);
  assert.equal(smtpSendError(err({ code: 'EAUTH' })).code, 'mail.auth_failed');
});

test('command errors: missing folders are mail.not_found', () => {
  assert.equal(imapCommandError(err({ serverResponseCode: 'NONEXISTENT' }), 'SELECT').code, 'mail.not_found');
  assert.equal(imapCommandError(err({ code: 'NoConnection' }), 'FETCH').code, 'mail.unreachable');
});

test('a device never gets the peer’s words: fixed messages, whatever the server said', () => {
  const marker = 'SECRET-MARKER-0123456789abcdef';
  const said = [
    err(
      { code: 'EPROTOCOL', response: `SSH-2.0-OpenSSH_9.2p1 ${marker}` },
      `Invalid greeting. response=${marker}`,
    ),
    err({ code: 'ECONNREFUSED' }, `connect ECONNREFUSED 10.0.0.1:22 ${marker}`),
    err({ code: 'ETLS' }, `wrong version number ${marker}`),
    err({ authenticationFailed: true, responseText: `${marker} go away` }),
    err({ serverResponseCode: 'NONEXISTENT', responseText: marker }),
    err({ responseText: `Mailbox ${marker} does not exist` }),
    err({ responseText: `* BYE ${marker}` }),
    err({ code: 'EENVELOPE', responseCode: 550, response: `550 ${marker} unknown` }),
    err({ code: 'EMESSAGE', responseCode: 451, response: `451 ${marker}` }),
    err({ code: 'EMESSAGE', responseCode: 554, response: `554 ${marker}` }),
  ];
  for (const e of said) {
    for (const g of [mailConnectError(e, 'imap'), imapCommandError(e, 'FETCH'), smtpSendError(e)]) {
      assert.doesNotMatch(g.message, /SECRET-MARKER/, `${g.code}: ${g.message}`);
      assert.equal(JSON.stringify(g.toJSON()).includes(marker), false);
      assert.equal(g.cause, undefined, 'no raw error travels with it');
    }
  }
});

test('the operator log gets the peer’s words, cleaned and cut', () => {
  const lines: { fields: Record<string, unknown>; msg: string }[] = [];
  const logger = { info: (fields: Record<string, unknown>, msg: string) => lines.push({ fields, msg }) };
  const banner = `SSH-2.0-OpenSSH\r\n\u0000\u001b[31m${'x'.repeat(10_000)}`;
  const g = mailConnectError(err({ code: 'EPROTOCOL', response: banner }), 'smtp', logger as never);
  assert.equal(g.code, 'mail.server_error');
  assert.equal(lines.length, 1);
  const peer = lines[0]?.fields.peer as string;
  assert.ok(peer.startsWith('SSH-2.0-OpenSSH????[31m'), peer.slice(0, 40));
  assert.ok(peer.length <= PEER_WORDS_MAX + 1, `cut to ${PEER_WORDS_MAX}`);
  assert.doesNotMatch(peer, /[^\x20-\x7e…]/);
  assert.equal(lines[0]?.fields.code, 'mail.server_error');
  assert.equal(peerWords(undefined), undefined);
  assert.equal(peerWords(err({}, 'short')), 'short');
});

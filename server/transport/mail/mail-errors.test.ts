import assert from 'node:assert/strict';
import { test } from 'node:test';
import { imapCommandError, mailConnectError, smtpSendError } from './mail-errors.ts';

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

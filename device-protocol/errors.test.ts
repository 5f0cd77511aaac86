import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  ERROR_CODES,
  ERRORS,
  type ErrorCode,
  GatewayError,
  isRetryableCode,
  longPollStatusOf,
  presentError,
} from './errors.ts';
import { adviceFor } from './spec-tables.ts';

const codes = Object.keys(ERRORS) as ErrorCode[];

test('every registry entry has a message, an HTTP error status and says who may see it', () => {
  for (const code of codes) {
    const spec = ERRORS[code];
    assert.ok(spec.message.length > 0, code);
    assert.ok(spec.status >= 400 && spec.status <= 599, `${code}: ${spec.status}`);
    assert.equal(ERROR_CODES[code], spec.message);
  }
});

test('server-internal families are hidden from handsets, and SPEC §6 says so for each', () => {
  for (const code of codes) {
    const internal = /^(bus|registry|config|api)\./.test(code);
    assert.equal(ERRORS[code].handset, !internal, code);
    if (internal) assert.match(adviceFor(code).action, /not sent to devices/, code);
  }
});

test('a handset sees bus failures as retryable request failures and other internal codes as internal', () => {
  const timeout = presentError(
    new GatewayError('bus.timeout', 'No answer on "mmgw.transport.n1.req"'),
    'handset',
  );
  assert.deepEqual(timeout, {
    code: 'request.timeout',
    message: ERROR_CODES['request.timeout'],
    status: 504,
    retryable: true,
  });
  for (const code of ['bus.no_responders', 'bus.closed'] as const) {
    const p = presentError(new GatewayError(code, 'subject mmgw.x'), 'handset');
    assert.equal(p.code, 'request.unavailable');
    assert.equal(p.retryable, true);
    assert.doesNotMatch(p.message, /mmgw\.x/);
  }
  for (const code of ['registry.not_found', 'config.invalid', 'api.forbidden', 'bus.bad_message'] as const) {
    const p = presentError(new GatewayError(code, 'details of the inside', { field: 'x' }), 'handset');
    assert.equal(p.code, 'internal', code);
    assert.equal(p.message, ERROR_CODES.internal);
    assert.equal(p.field, undefined);
  }
});

test('an operator sees the code itself, with its registry status; internal errors never show their text', () => {
  const p = presentError(
    new GatewayError('registry.duplicate', 'IMEI 1 exists', { field: 'imei' }),
    'operator',
  );
  assert.deepEqual(p, {
    code: 'registry.duplicate',
    message: 'IMEI 1 exists',
    status: 409,
    retryable: false,
    field: 'imei',
  });
  const crash = presentError(new TypeError("Cannot read properties of null (reading 'write')"), 'operator');
  assert.deepEqual(crash, { code: 'internal', message: ERROR_CODES.internal, status: 500, retryable: false });
  const wrapped = presentError(new GatewayError('internal', 'stack: at foo.ts:12'), 'handset');
  assert.equal(wrapped.message, ERROR_CODES.internal);
});

test('handset codes pass through with their own message, field and retry hint', () => {
  const g = new GatewayError('mail.auth_failed', 'The mail server rejected the password.', {
    field: 'imap.password',
    retryAfterMs: 5000,
  });
  assert.deepEqual(presentError(g, 'handset'), {
    code: 'mail.auth_failed',
    message: 'The mail server rejected the password.',
    status: 502,
    retryable: false,
    retryAfterMs: 5000,
    field: 'imap.password',
  });
  // The thrower may make any error retryable; the registry's default only adds to it.
  assert.equal(
    presentError(new GatewayError('transcode.bad_input', undefined, { retryable: true }), 'handset')
      .retryable,
    true,
  );
  assert.equal(presentError(new GatewayError('session.busy'), 'handset').retryable, true);
});

test('retryable codes: the registry default', () => {
  for (const code of [
    'request.timeout',
    'request.unavailable',
    'session.busy',
    'auth.rate_limited',
    'session.draining',
  ]) {
    assert.equal(isRetryableCode(code), true, code);
  }
  for (const code of ['auth.bad_secret', 'request.bad_input', 'mail.not_found', 'no.such_code']) {
    assert.equal(isRetryableCode(code), false, code);
  }
});

test('long-poll statuses follow SPEC §4.2 and are always one a handset reads frames from, or 503', () => {
  assert.equal(longPollStatusOf('auth.bad_secret'), 401);
  assert.equal(longPollStatusOf('auth.disabled'), 401);
  assert.equal(longPollStatusOf('auth.resume_failed'), 410);
  assert.equal(longPollStatusOf('auth.rate_limited'), 429);
  assert.equal(longPollStatusOf('session.rate_limited'), 429);
  assert.equal(longPollStatusOf('protocol.bad_frame'), 400);
  assert.equal(longPollStatusOf('session.draining'), 503);
  assert.equal(longPollStatusOf('session.busy'), 503);
  assert.equal(longPollStatusOf('session.expired'), 410);
  assert.equal(longPollStatusOf('bus.timeout'), 503);
  for (const code of codes) assert.ok([400, 401, 410, 429, 503].includes(longPollStatusOf(code)), code);
});

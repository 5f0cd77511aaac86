/**
 * Turns what @xmpp/client, the socket layer and DNS throw into GatewayErrors
 * with the stable im.* codes a handset can act on.
 *
 * A device-facing error never carries the server's words (issue #11): a
 * server can be anything a handset names (an HTTP service, an SSH port), and
 * what it sends (a banner, headers, a cookie, a stream error's <text>, a
 * SASL failure's text, even a condition element it made up) would otherwise
 * come back to the handset. So the message is fixed per case and names at
 * most a condition from RFC 6120's closed lists or an error code the socket
 * layer set; everything else goes to the operator's log through
 * xmppErrorDetail, sanitised and cut.
 */
import { GatewayError } from '../../../../device-protocol/errors.ts';

/** SASL failure conditions (RFC 6120 §6.5). */
const SASL_CONDITIONS = new Set([
  'aborted',
  'account-disabled',
  'credentials-expired',
  'encryption-required',
  'incorrect-encoding',
  'invalid-authzid',
  'invalid-mechanism',
  'malformed-request',
  'mechanism-too-weak',
  'not-authorized',
  'temporary-auth-failure',
]);

/** Stream error conditions (RFC 6120 §4.9.3). */
const STREAM_CONDITIONS = new Set([
  'bad-format',
  'bad-namespace-prefix',
  'conflict',
  'connection-timeout',
  'host-gone',
  'host-unknown',
  'improper-addressing',
  'internal-server-error',
  'invalid-from',
  'invalid-namespace',
  'invalid-xml',
  'not-authorized',
  'not-well-formed',
  'policy-violation',
  'remote-connection-failed',
  'reset',
  'resource-constraint',
  'restricted-xml',
  'see-other-host',
  'system-shutdown',
  'undefined-condition',
  'unsupported-encoding',
  'unsupported-feature',
  'unsupported-stanza-type',
  'unsupported-version',
]);

/** Stanza error conditions (RFC 6120 §8.3.3). */
const STANZA_CONDITIONS = new Set([
  'bad-request',
  'conflict',
  'feature-not-implemented',
  'forbidden',
  'gone',
  'internal-server-error',
  'item-not-found',
  'jid-malformed',
  'not-acceptable',
  'not-allowed',
  'not-authorized',
  'policy-violation',
  'recipient-unavailable',
  'redirect',
  'registration-required',
  'remote-server-not-found',
  'remote-server-timeout',
  'resource-constraint',
  'service-unavailable',
  'subscription-required',
  'undefined-condition',
  'unexpected-request',
]);

const DNS_CODES = new Set(['ENOTFOUND', 'EAI_AGAIN', 'ENODATA', 'ESERVFAIL', 'ENONAME', 'EREFUSED']);
const NET_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
  'ECONNABORTED',
]);
/** Certificate verification codes OpenSSL sets on a TLS socket's error (the rest are ERR_TLS_* / ERR_SSL_*). */
const TLS_CODE = /^(ERR_TLS_|ERR_SSL_|CERT_|UNABLE_TO_|DEPTH_ZERO_|SELF_SIGNED_|HOSTNAME_)[A-Z0-9_]{1,60}$/;

/** What the server sent was not XML, or not XMPP (a parser error, an oversized stanza). */
export function malformedStream(cause: unknown): GatewayError {
  return new GatewayError('im.server_error', 'the XMPP server sent data that is not a valid XMPP stream', {
    cause,
  });
}

export function mapXmppError(err: unknown): GatewayError {
  if (err instanceof GatewayError) return err;
  const e = (err ?? {}) as { name?: unknown; code?: unknown; condition?: unknown; message?: unknown };
  const condition = typeof e.condition === 'string' ? e.condition : undefined;
  const code = typeof e.code === 'string' ? e.code : undefined;
  const message = typeof e.message === 'string' ? e.message : '';
  const options = { cause: err };
  if (e.name === 'SASLError') {
    return new GatewayError(
      'im.auth_failed',
      condition !== undefined && SASL_CONDITIONS.has(condition)
        ? `XMPP authentication failed (${condition})`
        : 'XMPP authentication failed',
      options,
    );
  }
  if (e.name === 'StreamError') {
    const known = condition !== undefined && STREAM_CONDITIONS.has(condition) ? condition : undefined;
    if (known === 'host-unknown' || known === 'host-gone' || known === 'improper-addressing') {
      return new GatewayError(
        'im.unknown_domain',
        `the XMPP server does not serve this domain (${known})`,
        options,
      );
    }
    return new GatewayError('im.unreachable', `XMPP stream error (${known ?? 'undefined-condition'})`, {
      ...options,
      retryable: true,
    });
  }
  if (code !== undefined && DNS_CODES.has(code)) {
    return new GatewayError('im.unknown_domain', `the XMPP domain does not resolve (${code})`, options);
  }
  if (code !== undefined && NET_CODES.has(code)) {
    return new GatewayError('im.unreachable', `the XMPP server could not be reached (${code})`, {
      ...options,
      retryable: true,
    });
  }
  if (code !== undefined && TLS_CODE.test(code)) {
    return new GatewayError('im.unreachable', `the TLS handshake with the XMPP server failed (${code})`, {
      ...options,
      retryable: true,
    });
  }
  if (e.name === 'TimeoutError') {
    return new GatewayError('im.unreachable', 'the XMPP server did not answer in time', {
      ...options,
      retryable: true,
    });
  }
  if (e.name === 'StanzaError') {
    const known = condition !== undefined && STANZA_CONDITIONS.has(condition) ? condition : 'an error';
    return new GatewayError('im.server_error', `the XMPP server answered ${known}`, options);
  }
  if (e.name === 'XMLError') return malformedStream(err);
  // The library's own words, not the server's: over an unencrypted stream it refuses PLAIN,
  // and with nothing else offered it has no mechanism to pick.
  if (message.startsWith('SASL: ')) {
    return new GatewayError(
      'im.unreachable',
      'the XMPP server offers no sign-in method the gateway accepts on this connection',
      { ...options, retryable: true },
    );
  }
  if (message === 'STARTTLS_FAILURE') {
    return new GatewayError('im.unreachable', 'the XMPP server refused to start TLS', {
      ...options,
      retryable: true,
    });
  }
  return new GatewayError('im.unreachable', 'the XMPP connection failed', { ...options, retryable: true });
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: that is the point
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g;

/**
 * What went wrong, for the operator's log only: the error and its causes
 * (name, condition, code, message, a stream error's text), control
 * characters and line breaks turned into spaces (no forged log lines), cut to
 * `maxChars`. May contain whatever the server sent.
 */
export function xmppErrorDetail(err: unknown, maxChars = 200): string {
  const parts: string[] = [];
  let e: unknown = err;
  for (let depth = 0; e !== undefined && e !== null && depth < 4; depth++) {
    if (typeof e !== 'object') {
      parts.push(String(e));
      break;
    }
    const o = e as { name?: unknown; code?: unknown; condition?: unknown; text?: unknown; message?: unknown };
    const fields = [o.name, o.code, o.condition, o.message, o.text].filter(
      (v, i, all): v is string => typeof v === 'string' && v !== '' && all.indexOf(v) === i,
    );
    parts.push(fields.join(' '));
    e = (e as { cause?: unknown }).cause;
  }
  let text = parts.join(' <- ').replace(UNPRINTABLE, ' ').trim();
  if (text.length > maxChars) {
    text = text.slice(0, maxChars);
    const last = text.charCodeAt(text.length - 1);
    if (last >= 0xd800 && last <= 0xdbff) text = text.slice(0, -1);
    text += '…';
  }
  return text;
}

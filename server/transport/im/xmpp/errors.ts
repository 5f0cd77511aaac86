/**
 * Turns what @xmpp/client, the socket layer and DNS throw into GatewayErrors
 * with the stable im.* codes a handset can act on.
 */
import { GatewayError } from '../../../../device-protocol/errors.ts';

const AUTH_CONDITIONS = new Set([
  'not-authorized',
  'account-disabled',
  'credentials-expired',
  'invalid-authzid',
  'encryption-required',
]);
const DNS_CODES = new Set(['ENOTFOUND', 'EAI_AGAIN', 'ENODATA', 'ESERVFAIL', 'ENONAME']);
const NET_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
  'ECONNABORTED',
]);

export function mapXmppError(err: unknown): GatewayError {
  if (err instanceof GatewayError) return err;
  const e = (err ?? {}) as { name?: string; code?: string; condition?: string; message?: string };
  const message = typeof e.message === 'string' ? e.message : String(err);
  if (e.name === 'SASLError') {
    if (e.condition === undefined || AUTH_CONDITIONS.has(e.condition)) {
      return new GatewayError(
        'im.auth_failed',
        `XMPP authentication failed (${e.condition ?? 'no condition'})`,
        {
          cause: err,
        },
      );
    }
    return new GatewayError('im.auth_failed', `XMPP authentication failed: ${message}`, { cause: err });
  }
  if (e.name === 'StreamError') {
    if (
      e.condition === 'host-unknown' ||
      e.condition === 'host-gone' ||
      e.condition === 'improper-addressing'
    ) {
      return new GatewayError(
        'im.unknown_domain',
        `the XMPP server does not serve this domain (${e.condition})`,
        {
          cause: err,
        },
      );
    }
    return new GatewayError('im.unreachable', `XMPP stream error: ${e.condition ?? message}`, {
      cause: err,
      retryable: true,
    });
  }
  if (typeof e.code === 'string' && DNS_CODES.has(e.code)) {
    return new GatewayError('im.unknown_domain', `the XMPP domain does not resolve (${e.code})`, {
      cause: err,
    });
  }
  if (typeof e.code === 'string' && NET_CODES.has(e.code)) {
    return new GatewayError('im.unreachable', `the XMPP server could not be reached (${e.code})`, {
      cause: err,
      retryable: true,
    });
  }
  if (e.name === 'TimeoutError') {
    return new GatewayError('im.unreachable', 'the XMPP server did not answer in time', {
      cause: err,
      retryable: true,
    });
  }
  if (e.name === 'StanzaError') {
    return new GatewayError('im.server_error', `the XMPP server answered ${e.condition ?? 'an error'}`, {
      cause: err,
    });
  }
  return new GatewayError('im.unreachable', `XMPP connection failed: ${message}`, {
    cause: err,
    retryable: true,
  });
}

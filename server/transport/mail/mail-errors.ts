/**
 * Turns what imapflow, nodemailer and Node's sockets throw into GatewayErrors
 * with the stable mail.* codes. The message never includes credentials: only
 * the server's own response text and the error code.
 */
import { GatewayError } from '../../../device-protocol/errors.ts';

type AnyError = Error & {
  code?: string;
  responseCode?: number;
  response?: string;
  responseText?: string;
  serverResponseCode?: string;
  authenticationFailed?: boolean;
  command?: string;
  rejected?: unknown[];
  cause?: unknown;
  reason?: string;
};

const UNREACHABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
  'ECONNECTION',
  'NoConnection',
  'EConnectionClosed',
  'ClosedAfterConnectText',
  'CONNECT_TIMEOUT',
  'GREETING_TIMEOUT',
  'ETIMEOUT',
  'StateLogout',
]);

const TLS_MESSAGE = /certificate|self[- ]signed|ssl|tls|handshake|wrong version number|unable to verify/i;

function isTlsError(err: AnyError): boolean {
  const code = err.code ?? '';
  if (code === 'ETLS' || code === 'ClosedAfterConnectTLS' || code === 'UPGRADE_TIMEOUT' || code === 'EPROTO')
    return true;
  if (code.startsWith('ERR_TLS') || code.startsWith('ERR_SSL') || code.includes('CERT')) return true;
  if (code === 'DEPTH_ZERO_SELF_SIGNED_CERT' || code === 'UNABLE_TO_VERIFY_LEAF_SIGNATURE') return true;
  const cause = err.cause as AnyError | undefined;
  if (cause && typeof cause === 'object' && cause !== err && isTlsError(cause)) return true;
  // imapflow's "Server does not support STARTTLS" (tls: starttls against a plaintext-only server).
  if (/STARTTLS/i.test(err.message ?? '')) return true;
  return code === 'ESOCKET' && TLS_MESSAGE.test(err.message);
}

/** Errors from connecting or logging in to IMAP (also reused for SMTP verify). */
export function mailConnectError(err: unknown, server: 'imap' | 'smtp'): GatewayError {
  if (err instanceof GatewayError) return err;
  const e = (err ?? {}) as AnyError;
  const label = server.toUpperCase();
  if (e.authenticationFailed || e.code === 'EAUTH' || e.serverResponseCode === 'AUTHENTICATIONFAILED') {
    return new GatewayError('mail.auth_failed', `${label} server rejected the login`, {
      field: `${server}.password`,
    });
  }
  if (isTlsError(e)) {
    return new GatewayError(
      'mail.tls_failed',
      `${label} TLS failed: ${e.code ?? ''} ${e.message ?? ''}`.trim(),
      {
        field: `${server}.tls`,
      },
    );
  }
  if (e.code && UNREACHABLE_CODES.has(e.code)) {
    return new GatewayError('mail.unreachable', `${label} server unreachable (${e.code})`, {
      retryable: true,
      retryAfterMs: 5000,
      field: `${server}.host`,
    });
  }
  if (e.code === 'EDNS' || e.code === 'ESOCKET') {
    return new GatewayError('mail.unreachable', `${label} server unreachable (${e.code})`, {
      retryable: true,
      retryAfterMs: 5000,
      field: `${server}.host`,
    });
  }
  return new GatewayError('mail.server_error', `${label} error: ${e.message ?? String(err)}`, { cause: err });
}

/** Errors from an IMAP command on an established session. */
export function imapCommandError(err: unknown, what: string): GatewayError {
  if (err instanceof GatewayError) return err;
  const e = (err ?? {}) as AnyError;
  if (e.code && UNREACHABLE_CODES.has(e.code)) return mailConnectError(err, 'imap');
  if (e.serverResponseCode === 'NONEXISTENT' || e.code === 'NotFound') {
    return new GatewayError('mail.not_found', `${what}: no such folder or message`);
  }
  const text = e.responseText ?? e.message ?? String(err);
  if (/doesn't exist|does not exist|not found|unknown mailbox/i.test(text)) {
    return new GatewayError('mail.not_found', `${what}: ${text}`);
  }
  return new GatewayError('mail.server_error', `${what}: ${text}`, { cause: err });
}

/** Errors from nodemailer's sendMail. */
export function smtpSendError(err: unknown): GatewayError {
  if (err instanceof GatewayError) return err;
  const e = (err ?? {}) as AnyError;
  if (e.code === 'EENVELOPE' || e.command === 'RCPT TO') {
    if (e.responseCode === 552) return new GatewayError('mail.too_large', e.response ?? 'message too large');
    return new GatewayError('mail.recipient_refused', e.response ?? e.message, { field: 'to' });
  }
  if (e.responseCode === 552 || e.responseCode === 523) {
    return new GatewayError('mail.too_large', e.response ?? 'message too large', { field: 'attachments' });
  }
  if (e.code === 'EAUTH' || e.code === 'ETLS' || isTlsError(e) || (e.code && UNREACHABLE_CODES.has(e.code))) {
    return mailConnectError(err, 'smtp');
  }
  if (e.code === 'EMESSAGE' && e.responseCode && e.responseCode >= 400 && e.responseCode < 500) {
    return new GatewayError('mail.send_failed', e.response ?? e.message, {
      retryable: true,
      retryAfterMs: 30_000,
    });
  }
  return new GatewayError('mail.send_failed', e.response ?? e.message ?? String(err), { cause: err });
}

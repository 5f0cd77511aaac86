/**
 * Turns what imapflow, nodemailer and Node's sockets throw into GatewayErrors
 * with the stable mail.* codes.
 *
 * A device gets the code and a fixed message, never the server's words
 * (issue #11): a "mail server" a handset names may be an SSH daemon, a web
 * service or a metadata endpoint, and echoing its banner or its answer would
 * read it out through the gateway. The server's words go to the operator log
 * only, cleaned and cut (peerWords), with the code the device got.
 */
import type { Logger } from 'pino';
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

/** How much of a peer's words the operator log keeps. */
export const PEER_WORDS_MAX = 200;

/**
 * What the peer said (its response or error text), for the operator log:
 * control characters and anything outside printable ASCII replaced by "?",
 * at most PEER_WORDS_MAX characters. Never for a device.
 */
export function peerWords(err: unknown): string | undefined {
  if (err === null || typeof err !== 'object') return err === undefined ? undefined : clean(String(err));
  const e = err as AnyError;
  const said = e.response ?? e.responseText ?? e.message;
  if (typeof said !== 'string' || said === '') return undefined;
  return clean(said);
}

function clean(text: string): string {
  // Cut first: the replacement must not walk a 10 MB banner.
  const head = text.length > PEER_WORDS_MAX ? text.slice(0, PEER_WORDS_MAX) : text;
  const printable = head.replace(/[^\x20-\x7e]/g, '?');
  return text.length > PEER_WORDS_MAX ? `${printable}…` : printable;
}

/** Logs the peer's words beside the code the device got (info: an operator's question, not a fault of ours). */
function logged(error: GatewayError, err: unknown, logger: Logger | undefined, what: string): GatewayError {
  logger?.info(
    {
      code: error.code,
      ...(error.field === undefined ? {} : { field: error.field }),
      peerCode: (err as AnyError | undefined)?.code,
      responseCode: (err as AnyError | undefined)?.responseCode,
      peer: peerWords(err),
    },
    what,
  );
  return error;
}

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

const unreachable = (label: string, server: string) =>
  new GatewayError('mail.unreachable', `The ${label} server could not be reached.`, {
    retryable: true,
    retryAfterMs: 5000,
    field: `${server}.host`,
  });

/** Errors from connecting or logging in to IMAP (also reused for SMTP verify). */
export function mailConnectError(err: unknown, server: 'imap' | 'smtp', logger?: Logger): GatewayError {
  if (err instanceof GatewayError) return err;
  const e = (err ?? {}) as AnyError;
  const label = server.toUpperCase();
  const say = (error: GatewayError) => logged(error, err, logger, `${server} connection failed`);
  if (e.authenticationFailed || e.code === 'EAUTH' || e.serverResponseCode === 'AUTHENTICATIONFAILED') {
    return say(
      new GatewayError('mail.auth_failed', `The ${label} server rejected the login.`, {
        field: `${server}.password`,
      }),
    );
  }
  if (isTlsError(e)) {
    return say(
      new GatewayError('mail.tls_failed', `TLS with the ${label} server failed (certificate or protocol).`, {
        field: `${server}.tls`,
      }),
    );
  }
  if (e.code && (UNREACHABLE_CODES.has(e.code) || e.code === 'EDNS' || e.code === 'ESOCKET')) {
    return say(unreachable(label, server));
  }
  return say(new GatewayError('mail.server_error', `The ${label} server answered with an error.`));
}

/** Errors from an IMAP command on an established session. */
export function imapCommandError(err: unknown, what: string, logger?: Logger): GatewayError {
  if (err instanceof GatewayError) return err;
  const e = (err ?? {}) as AnyError;
  if (e.code && UNREACHABLE_CODES.has(e.code)) return mailConnectError(err, 'imap', logger);
  const say = (error: GatewayError) => logged(error, err, logger, `imap ${what} failed`);
  const notFound = () => new GatewayError('mail.not_found', `${what}: no such folder or message.`);
  if (e.serverResponseCode === 'NONEXISTENT' || e.code === 'NotFound') return say(notFound());
  // Only matched, never repeated: servers without the NONEXISTENT code say it in words.
  const text = e.responseText ?? e.message ?? '';
  if (/doesn't exist|does not exist|not found|unknown mailbox/i.test(text)) return say(notFound());
  return say(new GatewayError('mail.server_error', `${what}: the IMAP server answered with an error.`));
}

/** Errors from nodemailer's sendMail. */
export function smtpSendError(err: unknown, logger?: Logger): GatewayError {
  if (err instanceof GatewayError) return err;
  const e = (err ?? {}) as AnyError;
  const say = (error: GatewayError) => logged(error, err, logger, 'smtp send failed');
  const tooLarge = (field?: string) =>
    new GatewayError('mail.too_large', 'The SMTP server refused the message as too large.', {
      ...(field === undefined ? {} : { field }),
    });
  if (e.code === 'EENVELOPE' || e.command === 'RCPT TO') {
    if (e.responseCode === 552) return say(tooLarge());
    return say(
      new GatewayError('mail.recipient_refused', 'The SMTP server refused one or more recipients.', {
        field: 'to',
      }),
    );
  }
  if (e.responseCode === 552 || e.responseCode === 523) return say(tooLarge('attachments'));
  if (e.code === 'EAUTH' || e.code === 'ETLS' || isTlsError(e) || (e.code && UNREACHABLE_CODES.has(e.code))) {
    return mailConnectError(err, 'smtp', logger);
  }
  if (e.code === 'EMESSAGE' && e.responseCode && e.responseCode >= 400 && e.responseCode < 500) {
    return say(
      new GatewayError('mail.send_failed', 'The SMTP server did not accept the message now; retry later.', {
        retryable: true,
        retryAfterMs: 30_000,
      }),
    );
  }
  return say(new GatewayError('mail.send_failed', 'The SMTP server did not accept the message.'));
}

/**
 * nodemailer transports built from account settings (one per send; SMTP
 * sessions are short), connected to the address the outbound policy checked
 * (destination.ts), the host name kept for TLS.
 *
 * The gateway opens the socket itself (nodemailer's getSocket), so it can
 * end it: every SMTP exchange has a deadline (smtpWithin), past which its
 * socket is destroyed. nodemailer's own timeouts count silence only; a
 * server that answers one byte at a time would otherwise hold a send forever.
 */
import { connect, type Socket } from 'node:net';
import { Readable } from 'node:stream';
import nodemailer, { type Transporter } from 'nodemailer';
import type SMTPTransport from 'nodemailer/lib/smtp-transport/index.js';
import { GatewayError } from '../../../device-protocol/errors.ts';
import type { PinnedDestination } from '../../net/destination-policy.ts';
import type { MailServerSettings } from './account-store.ts';
import { tlsServerName } from './destination.ts';

/** Longest SMTP reply taken (nodemailer's default is 1 MB): real replies are a few lines. */
const SMTP_MAX_RESPONSE_BYTES = 64 * 1024;

export interface SmtpTransport {
  transport: Transporter<SMTPTransport.SentMessageInfo>;
  /** Destroys every socket the transport opened. */
  destroy(): void;
  close(): void;
}

export function createSmtpTransport(
  settings: MailServerSettings,
  target: PinnedDestination,
  timeoutMs = 15_000,
): SmtpTransport {
  const servername = tlsServerName(target);
  const sockets = new Set<Socket>();
  const options: SMTPTransport.Options & {
    maxResponseSize?: number;
    getSocket?: (
      options: unknown,
      callback: (err: Error | null, socket?: { connection: Socket }) => void,
    ) => void;
  } = {
    host: target.address,
    port: target.port,
    secure: settings.tls === 'implicit',
    // 'none' means no TLS at all, even if the server offers STARTTLS; 'starttls' insists on it.
    ignoreTLS: settings.tls === 'none',
    requireTLS: settings.tls === 'starttls',
    auth: { user: settings.user, pass: settings.password },
    // SNI and the certificate check on the name the handset gave (an address gets neither SNI nor a name check).
    tls: {
      rejectUnauthorized: !settings.allowInvalidCert,
      ...(servername === undefined ? {} : { servername }),
    },
    connectionTimeout: timeoutMs,
    greetingTimeout: timeoutMs,
    socketTimeout: 4 * timeoutMs,
    maxResponseSize: SMTP_MAX_RESPONSE_BYTES,
    logger: false,
    debug: false,
    // The TCP connection is ours: to the checked address, and destroyed at the deadline.
    getSocket(_options, callback) {
      const socket = connect({ host: target.address, port: target.port });
      sockets.add(socket);
      socket.once('close', () => sockets.delete(socket));
      const timer = setTimeout(
        () => socket.destroy(Object.assign(new Error('connect timed out'), { code: 'ETIMEDOUT' })),
        timeoutMs,
      );
      const settle = (err: Error | null) => {
        clearTimeout(timer);
        socket.off('connect', onConnect);
        socket.off('error', onError);
        if (err) callback(err);
        else callback(null, { connection: socket });
      };
      const onConnect = () => settle(null);
      const onError = (err: Error) => settle(err);
      socket.once('connect', onConnect);
      socket.once('error', onError);
    },
  };
  const transport = nodemailer.createTransport(options);
  return {
    transport,
    destroy() {
      for (const socket of sockets) socket.destroy();
    },
    close() {
      transport.close();
      for (const socket of sockets) socket.destroy();
    },
  };
}

/**
 * The message for sendMail's `raw`, as a stream that fails instead of ending
 * when `go()` says no (asked as the server asks for the data and again before
 * its end): nodemailer then never writes the final dot, and the server takes
 * nothing. For a process paused mid-send (SIGSTOP, a VM pause) whose device
 * sent the message again elsewhere meanwhile.
 */
export function guardedMessage(raw: Buffer, go: () => boolean): Readable {
  let given = false;
  return new Readable({
    read() {
      if (!go()) {
        this.destroy(new Error('the process was paused mid-send; not sent'));
        return;
      }
      if (given) {
        this.push(null);
        return;
      }
      given = true;
      this.push(raw);
    },
  });
}

/**
 * Runs one SMTP exchange (verify, sendMail) for at most `ms`: past it the
 * sockets are destroyed and the exchange fails with mail.unreachable.
 */
export async function smtpWithin<T>(smtp: SmtpTransport, ms: number, exchange: () => Promise<T>): Promise<T> {
  let late = false;
  const timer = setTimeout(() => {
    late = true;
    smtp.destroy();
  }, ms);
  try {
    return await exchange();
  } catch (err) {
    if (!late) throw err;
    throw new GatewayError('mail.unreachable', 'The SMTP server did not answer in time.', {
      retryable: true,
      retryAfterMs: 5000,
      field: 'smtp.host',
    });
  } finally {
    clearTimeout(timer);
  }
}

/**
 * nodemailer transports built from account settings (one per send; SMTP
 * sessions are short), connected to the address the outbound policy checked
 * (destination.ts), the host name kept for TLS.
 */
import nodemailer from 'nodemailer';
import type SMTPTransport from 'nodemailer/lib/smtp-transport/index.js';
import type { PinnedDestination } from '../../net/destination-policy.ts';
import type { MailServerSettings } from './account-store.ts';
import { tlsServerName } from './destination.ts';

/** Longest SMTP reply taken (nodemailer's default is 1 MB): real replies are a few lines. */
const SMTP_MAX_RESPONSE_BYTES = 64 * 1024;

export function createSmtpTransport(
  settings: MailServerSettings,
  target: PinnedDestination,
  timeoutMs = 15_000,
) {
  const servername = tlsServerName(target);
  const options: SMTPTransport.Options & { maxResponseSize?: number } = {
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
  };
  return nodemailer.createTransport(options);
}

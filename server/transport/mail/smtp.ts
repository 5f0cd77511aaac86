/** nodemailer transports built from account settings (one per send; SMTP sessions are short). */
import { isIP } from 'node:net';
import nodemailer from 'nodemailer';
import type SMTPTransport from 'nodemailer/lib/smtp-transport/index.js';
import type { MailServerSettings } from './account-store.ts';

export function createSmtpTransport(settings: MailServerSettings, timeoutMs = 15_000) {
  const options: SMTPTransport.Options = {
    host: settings.host,
    port: settings.port,
    secure: settings.tls === 'implicit',
    // 'none' means no TLS at all, even if the server offers STARTTLS; 'starttls' insists on it.
    ignoreTLS: settings.tls === 'none',
    requireTLS: settings.tls === 'starttls',
    auth: { user: settings.user, pass: settings.password },
    // SNI must not be an IP address (RFC 6066).
    tls: {
      rejectUnauthorized: !settings.allowInvalidCert,
      ...(isIP(settings.host) ? {} : { servername: settings.host }),
    },
    connectionTimeout: timeoutMs,
    greetingTimeout: timeoutMs,
    socketTimeout: 4 * timeoutMs,
    logger: false,
    debug: false,
  };
  return nodemailer.createTransport(options);
}

/**
 * The e-mail channel: each alarm record as a short plain-text mail through
 * the configured SMTP relay (nodemailer), to the configured recipients. The
 * relay goes through the node's outbound policy (service `mail` ports, or an
 * allowDestinations entry) and the connection to the address it checked,
 * the host name kept for TLS.
 */
import type { AlarmRecord } from '../alarm.ts';
import type { DestinationPolicy } from '../../net/destination-policy.ts';
import type { AlarmChannel } from './dispatcher.ts';

export interface EmailSettings {
  /** SMTP relay. */
  host: string;
  port: number;
  /** TLS from the first byte (465); otherwise STARTTLS when the relay offers it. */
  secure?: boolean;
  user?: string;
  password?: string;
  from: string;
  to: string[];
  /** Accept a relay certificate that does not verify (a test relay). */
  allowInvalidCert?: boolean;
  timeoutMs?: number;
}

export function alarmMailSubject(r: AlarmRecord): string {
  return `[mmgw] ${r.state === 'raised' ? r.severity.toUpperCase() : 'CLEARED'} ${r.kind} ${r.subject}`;
}

export function alarmMailText(r: AlarmRecord): string {
  return [
    r.message,
    '',
    `alarm:    ${r.id}`,
    `state:    ${r.state}`,
    `severity: ${r.severity}`,
    `since:    ${new Date(r.since).toISOString()}`,
    `at:       ${new Date(r.at).toISOString()}`,
    `node:     ${r.node}`,
    '',
  ].join('\n');
}

export function emailChannel(settings: EmailSettings, policy: DestinationPolicy): AlarmChannel {
  const timeoutMs = settings.timeoutMs ?? 15_000;
  return {
    name: 'email',
    async send(record: AlarmRecord): Promise<void> {
      const target = await policy.check('mail', settings.host, settings.port);
      // Loaded on first use: a node without an e-mail channel never loads nodemailer.
      const { default: nodemailer } = await import('nodemailer');
      const transport = nodemailer.createTransport({
        host: target.address,
        port: target.port,
        secure: settings.secure === true,
        ...(settings.user === undefined
          ? {}
          : { auth: { user: settings.user, pass: settings.password ?? '' } }),
        tls: { rejectUnauthorized: settings.allowInvalidCert !== true, servername: target.host },
        connectionTimeout: timeoutMs,
        greetingTimeout: timeoutMs,
        socketTimeout: timeoutMs,
        logger: false,
        debug: false,
      });
      try {
        await transport.sendMail({
          from: settings.from,
          to: settings.to,
          subject: alarmMailSubject(record),
          text: alarmMailText(record),
          headers: { 'X-Mmgw-Alarm': record.id },
        });
      } finally {
        transport.close();
      }
    },
  };
}

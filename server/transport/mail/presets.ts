/**
 * Mail server settings from a service profile preset: the handset (or the
 * operator) gives only who and the password; host, port and TLS come from
 * the preset. Preset `tls`: false is plain (`none`); true or absent is TLS,
 * implicit on the implicit-TLS ports (IMAPS 993, SMTPS 465), STARTTLS elsewhere.
 */
import type { PresetAccount } from '../../store/device-profile.ts';
import type { ServicePresets } from '../kit/presets.ts';
import type { MailServerSettings, TlsMode } from './account-store.ts';

export type MailPreset = PresetAccount & { imapHost: string; smtpHost: string };

function server(host: string, port: number, tls: boolean, implicitPort: number) {
  const mode: TlsMode = !tls ? 'none' : port === implicitPort ? 'implicit' : 'starttls';
  return { host, port, tls: mode };
}

/** Default ports: IMAPS 993 with TLS, IMAP 143 without; SMTP submission 587. */
function presetServers(p: MailPreset) {
  const tls = p.tls !== false;
  return {
    imap: server(p.imapHost, p.imapPort ?? (tls ? 993 : 143), tls, 993),
    smtp: server(p.smtpHost, p.smtpPort ?? 587, tls, 465),
  };
}

/** IMAP and SMTP settings for one user of a preset (the SMTP login is the IMAP one). */
export function mailSettingsFromPreset(
  preset: MailPreset,
  credentials: { user: string; password: string },
): { imap: MailServerSettings; smtp: MailServerSettings } {
  const { imap, smtp } = presetServers(preset);
  return { imap: { ...imap, ...credentials }, smtp: { ...smtp, ...credentials } };
}

export const mailPresets: ServicePresets<MailPreset> = {
  service: 'mail',
  noun: 'mail',
  // A mail preset needs both servers; one without them is not offered.
  usable: (p): p is MailPreset =>
    p.service === 'mail' && p.imapHost !== undefined && p.smtpHost !== undefined,
  view(p) {
    const { imap, smtp } = presetServers(p);
    return { label: p.label, imap, smtp };
  },
};

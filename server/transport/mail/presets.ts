/**
 * Mail server settings from a service profile preset: the handset (or the
 * operator) gives only who and the password; host, port and TLS come from
 * the preset. Preset `tls`: false is plain (`none`); true or absent is TLS,
 * implicit on the implicit-TLS ports (IMAPS 993, SMTPS 465), STARTTLS elsewhere.
 */
import { GatewayError } from '../../../device-protocol/errors.ts';
import type { Value } from '../../../device-protocol/messages.ts';
import { type DeviceProfile, findPreset, type PresetAccount } from '../../store/device-profile.ts';
import type { MailServerSettings, TlsMode } from './account-store.ts';

type MailPreset = PresetAccount & { imapHost: string; smtpHost: string };

/** A mail preset needs both servers; one without them is not offered. */
export function isMailPreset(p: PresetAccount): p is MailPreset {
  return p.service === 'mail' && p.imapHost !== undefined && p.smtpHost !== undefined;
}

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

/** The device's preset with this label, or service.unknown_preset (field `preset`). */
export function mailPreset(profile: DeviceProfile | undefined, label: string): MailPreset {
  const preset = profile === undefined ? undefined : findPreset(profile, 'mail', label);
  if (preset === undefined || !isMailPreset(preset)) {
    throw new GatewayError(
      'service.unknown_preset',
      `The service profile of this device has no mail preset "${label}" (mail.presets lists them).`,
      { field: 'preset' },
    );
  }
  return preset;
}

/** IMAP and SMTP settings for one user of a preset (the SMTP login is the IMAP one). */
export function mailSettingsFromPreset(
  preset: MailPreset,
  credentials: { user: string; password: string },
): { imap: MailServerSettings; smtp: MailServerSettings } {
  const { imap, smtp } = presetServers(preset);
  return { imap: { ...imap, ...credentials }, smtp: { ...smtp, ...credentials } };
}

/** What mail.presets shows of a preset. */
export function mailPresetView(p: MailPreset): Value {
  const { imap, smtp } = presetServers(p);
  return { label: p.label, imap, smtp };
}

/**
 * XMPP server settings from a service profile preset: the handset (or the
 * operator) gives only the JID and the password; the server (xmppHost and
 * xmppPort, else DNS SRV of the JID's domain) comes from the preset, and a
 * preset with xmppDomain takes only JIDs of that domain.
 */
import { GatewayError } from '../../../device-protocol/errors.ts';
import type { PresetAccount } from '../../store/device-profile.ts';
import type { ServicePresets } from '../kit/presets.ts';

export const imPresets: ServicePresets = {
  service: 'im',
  noun: 'chat',
  usable: (p): p is PresetAccount => p.service === 'im',
  view: (p) => ({
    label: p.label,
    ...(p.xmppDomain === undefined ? {} : { domain: p.xmppDomain }),
    ...(p.xmppHost === undefined ? {} : { host: p.xmppHost, port: p.xmppPort ?? 5222 }),
  }),
};

/** Host and port for a bare JID on this preset; request.bad_input (field `jid`) for another domain. */
export function imServerFromPreset(preset: PresetAccount, jid: string): { host?: string; port?: number } {
  const domain = jid.slice(jid.lastIndexOf('@') + 1);
  if (preset.xmppDomain !== undefined && domain !== preset.xmppDomain.toLowerCase()) {
    throw new GatewayError('request.bad_input', `jid: preset "${preset.label}" is for ${preset.xmppDomain}`, {
      field: 'jid',
    });
  }
  if (preset.xmppHost === undefined) return {};
  return { host: preset.xmppHost, port: preset.xmppPort ?? 5222 };
}

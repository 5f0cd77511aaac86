/**
 * Server presets of a device's service profile, for any service: which of
 * them a service can use, what its `<service>.presets` method shows of each,
 * and the one a request names by label (mail.account.add {preset}, im.login
 * {preset}). A service describes itself once as a ServicePresets; what a
 * preset turns into (IMAP and SMTP settings, an XMPP server) stays with the
 * service.
 */
import { GatewayError } from '../../../device-protocol/errors.ts';
import type { Value } from '../../../device-protocol/messages.ts';
import {
  type DeviceProfile,
  findPreset,
  type PresetAccount,
  type ServiceName,
} from '../../store/device-profile.ts';
import type { MethodDefinition } from '../types.ts';
import { noInput } from './method-input.ts';

export interface ServicePresets<P extends PresetAccount = PresetAccount> {
  service: ServiceName;
  /** The service as a user calls it, in error messages ("mail", "chat"). */
  noun: string;
  /** Whether the service can use this preset of its own (a mail preset needs both servers). */
  usable(preset: PresetAccount): preset is P;
  /** What `<service>.presets` shows of a preset. */
  view(preset: P): Value;
}

/** The device's usable preset with this label, or service.unknown_preset (field `preset`). */
export function servicePreset<P extends PresetAccount>(
  kind: ServicePresets<P>,
  profile: DeviceProfile | undefined,
  label: string,
): P {
  const preset = profile === undefined ? undefined : findPreset(profile, kind.service, label);
  if (preset === undefined || !kind.usable(preset)) {
    throw new GatewayError(
      'service.unknown_preset',
      `The service profile of this device has no ${kind.noun} preset "${label}" (${kind.service}.presets lists them).`,
      { field: 'preset' },
    );
  }
  return preset;
}

/** `<service>.presets`: the usable presets the device's service profile offers, as the service shows them. */
export function servicePresetsMethod<P extends PresetAccount>(
  kind: ServicePresets<P>,
): MethodDefinition<undefined> {
  return {
    method: `${kind.service}.presets`,
    input: noInput,
    async handle(ctx) {
      const presets = (ctx.profile?.presets ?? []).filter(
        (p): p is P => p.service === kind.service && kind.usable(p),
      );
      return { presets: presets.map((p) => kind.view(p)) };
    },
  };
}

/** mail.presets: the mail server presets the device's service profile offers (for mail.account.add {preset}). */
import { servicePresetsMethod } from '../../kit/presets.ts';
import type { MethodDefinition } from '../../types.ts';
import { mailPresets } from '../presets.ts';

export function presetsMethod(): MethodDefinition<undefined> {
  return servicePresetsMethod(mailPresets);
}

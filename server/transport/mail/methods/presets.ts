/** mail.presets: the mail server presets the device's service profile offers (for mail.account.add {preset}). */
import type { MethodDefinition } from '../../types.ts';
import { isMailPreset, mailPresetView } from '../presets.ts';

export function presetsMethod(): MethodDefinition<null> {
  return {
    method: 'mail.presets',
    validate: () => null,
    async handle(ctx) {
      return { presets: (ctx.profile?.presets ?? []).filter(isMailPreset).map(mailPresetView) };
    },
  };
}

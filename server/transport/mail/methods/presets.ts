/** mail.presets: the mail server presets the device's service profile offers (for mail.account.add {preset}). */
import { noInput } from '../../kit/method-input.ts';
import type { MethodDefinition } from '../../types.ts';
import { isMailPreset, mailPresetView } from '../presets.ts';

export function presetsMethod(): MethodDefinition<undefined> {
  return {
    method: 'mail.presets',
    input: noInput,
    async handle(ctx) {
      return { presets: (ctx.profile?.presets ?? []).filter(isMailPreset).map(mailPresetView) };
    },
  };
}

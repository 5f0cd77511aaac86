/** im.presets: the chat server presets the device's service profile offers (for im.login {preset}). */
import { noInput } from '../../kit/method-input.ts';
import type { MethodDefinition } from '../../types.ts';
import { imPresetView, isImPreset } from '../presets.ts';

export function imPresetsMethod(): MethodDefinition<undefined> {
  return {
    method: 'im.presets',
    input: noInput,
    async handle(ctx) {
      return { presets: (ctx.profile?.presets ?? []).filter(isImPreset).map(imPresetView) };
    },
  };
}

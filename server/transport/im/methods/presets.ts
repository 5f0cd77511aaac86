/** im.presets: the chat server presets the device's service profile offers (for im.login {preset}). */
import type { MethodDefinition } from '../../types.ts';
import { imPresetView, isImPreset } from '../presets.ts';

export function imPresetsMethod(): MethodDefinition<null> {
  return {
    method: 'im.presets',
    validate: () => null,
    async handle(ctx) {
      return { presets: (ctx.profile?.presets ?? []).filter(isImPreset).map(imPresetView) };
    },
  };
}

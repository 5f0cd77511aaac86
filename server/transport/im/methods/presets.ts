/** im.presets: the chat server presets the device's service profile offers (for im.login {preset}). */
import { servicePresetsMethod } from '../../kit/presets.ts';
import type { MethodDefinition } from '../../types.ts';
import { imPresets } from '../presets.ts';

export function imPresetsMethod(): MethodDefinition<undefined> {
  return servicePresetsMethod(imPresets);
}

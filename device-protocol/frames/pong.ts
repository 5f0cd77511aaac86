import { Kind } from '../messages.ts';
import type { FrameSpec } from './schema.ts';

export const pongSpec: FrameSpec = {
  kind: Kind.Pong,
  name: 'Pong',
  direction: 'both',
  validIn: ['active'],
  sequenced: 'never',
  doc: 'Answers Ping.',
  fields: [{ no: 1, name: 'nonce', type: 'uint', required: true, doc: 'The nonce of the Ping answered.' }],
};

import { Kind } from '../messages.ts';
import type { FrameSpec } from './schema.ts';

export const pingSpec: FrameSpec = {
  kind: Kind.Ping,
  name: 'Ping',
  direction: 'both',
  validIn: ['active'],
  sequenced: 'never',
  doc: 'Heartbeat; the other side answers Pong with the same nonce.',
  fields: [
    { no: 1, name: 'nonce', type: 'uint', required: true, doc: 'Chosen by the sender, echoed in Pong.' },
  ],
};

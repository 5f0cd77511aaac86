import { Kind } from '../messages.ts';
import type { FrameSpec } from './schema.ts';

export const ackSpec: FrameSpec = {
  kind: Kind.Ack,
  name: 'Ack',
  direction: 'device→gateway',
  validIn: ['active'],
  sequenced: 'never',
  doc: 'Cumulative ack: the device holds every sequenced frame up to and including seq.',
  fields: [{ no: 1, name: 'seq', type: 'uint', required: true, doc: 'Highest seq received without a gap.' }],
};

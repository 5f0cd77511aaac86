import { Kind } from '../messages.ts';
import type { FrameSpec } from './schema.ts';

export const resumeSpec: FrameSpec = {
  kind: Kind.Resume,
  name: 'Resume',
  direction: 'device→gateway',
  validIn: ['opening'],
  sequenced: 'never',
  doc: 'First frame on a new carrier to continue an existing session; acks up to lastSeq.',
  fields: [
    {
      no: 1,
      name: 'version',
      type: 'uint',
      required: true,
      doc: 'Highest protocol version the device speaks (≥ 1); see §8.',
    },
    { no: 2, name: 'sessionId', type: 'string', required: true, doc: 'From Welcome.' },
    { no: 3, name: 'resumeToken', type: 'string', required: true, doc: 'From Welcome.' },
    {
      no: 4,
      name: 'lastSeq',
      type: 'uint',
      required: true,
      doc: 'Highest seq the device has received (0 if none).',
    },
  ],
};

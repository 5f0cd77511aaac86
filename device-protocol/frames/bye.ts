import { Kind } from '../messages.ts';
import type { FrameSpec } from './schema.ts';

export const byeSpec: FrameSpec = {
  kind: Kind.Bye,
  name: 'Bye',
  direction: 'both',
  validIn: ['active'],
  sequenced: 'never',
  doc:
    'The last frame before the carrier closes. From the gateway: why, and whether to Resume. ' +
    'From the device: it logs out; the gateway ends the session (nothing to Resume) and closes the carrier. ' +
    'A device sends code `session.logout`, resumable false.',
  fields: [
    { no: 1, name: 'code', type: 'string', required: true, doc: 'Why (§6), e.g. `session.draining`.' },
    { no: 2, name: 'message', type: 'string', required: true, doc: 'Human-readable text.' },
    {
      no: 3,
      name: 'resumable',
      type: 'bool',
      required: true,
      doc: 'true: Resume this session; false: start anew with Hello.',
    },
    {
      no: 4,
      name: 'reconnectAfterMs',
      type: 'uint',
      required: false,
      doc: 'Wait this long before reconnecting.',
    },
  ],
};

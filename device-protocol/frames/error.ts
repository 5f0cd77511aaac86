import { Kind } from '../messages.ts';
import type { FrameSpec } from './schema.ts';

export const errorSpec: FrameSpec = {
  kind: Kind.Error,
  name: 'Error',
  direction: 'gateway→device',
  validIn: ['opening', 'active'],
  sequenced: 'when it answers a request',
  doc: 'With id: a Request failed (sequenced). Without id: about the session; fatal means the carrier closes next.',
  fields: [
    { no: 1, name: 'seq', type: 'uint', required: false, doc: 'Present exactly when id is present.' },
    { no: 2, name: 'id', type: 'string', required: false, doc: 'The id of the Request that failed.' },
    { no: 3, name: 'code', type: 'string', required: true, doc: 'Stable error code (§6).' },
    { no: 4, name: 'message', type: 'string', required: true, doc: 'Human-readable text; never parse it.' },
    {
      no: 5,
      name: 'fatal',
      type: 'bool',
      required: true,
      doc: 'The gateway closes the carrier after this frame.',
    },
    {
      no: 6,
      name: 'retryAfterMs',
      type: 'uint',
      required: false,
      doc: 'Wait at least this long before retrying.',
    },
  ],
};

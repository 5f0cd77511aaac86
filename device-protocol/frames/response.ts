import { Kind } from '../messages.ts';
import type { FrameSpec } from './schema.ts';

export const responseSpec: FrameSpec = {
  kind: Kind.Response,
  name: 'Response',
  direction: 'gateway→device',
  validIn: ['active'],
  sequenced: 'always',
  doc: 'The successful answer to a Request.',
  fields: [
    { no: 1, name: 'seq', type: 'uint', required: true, doc: 'Session sequence number (≥ 1).' },
    { no: 2, name: 'id', type: 'string', required: true, doc: 'The id of the Request answered.' },
    { no: 3, name: 'body', type: 'value', required: false, doc: 'Result (a Value).' },
  ],
};

import { Kind } from '../messages.ts';
import type { FrameSpec } from './schema.ts';

export const requestSpec: FrameSpec = {
  kind: Kind.Request,
  name: 'Request',
  direction: 'device→gateway',
  validIn: ['active'],
  sequenced: 'never',
  doc: 'Application request; answered by Response or Error with the same id.',
  fields: [
    {
      no: 1,
      name: 'id',
      type: 'string',
      required: true,
      doc: 'Client id: unique per device, resent unchanged after a reconnect.',
    },
    { no: 2, name: 'method', type: 'string', required: true, doc: 'Method name, e.g. `echo`.' },
    { no: 3, name: 'body', type: 'value', required: false, doc: 'Arguments (a Value).' },
  ],
};

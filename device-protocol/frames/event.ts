import { Kind } from '../messages.ts';
import type { FrameSpec } from './schema.ts';

export const eventSpec: FrameSpec = {
  kind: Kind.Event,
  name: 'Event',
  direction: 'gateway→device',
  validIn: ['active'],
  sequenced: 'always',
  doc: 'Something pushed to the device (new mail, a chat message, …).',
  fields: [
    { no: 1, name: 'seq', type: 'uint', required: true, doc: 'Session sequence number (≥ 1).' },
    { no: 2, name: 'name', type: 'string', required: true, doc: 'Event name, e.g. `mail.new`.' },
    { no: 3, name: 'body', type: 'value', required: false, doc: 'Payload (a Value).' },
  ],
};

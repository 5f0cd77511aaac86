import { Kind } from '../messages.ts';
import type { FrameSpec } from './schema.ts';

export const welcomeSpec: FrameSpec = {
  kind: Kind.Welcome,
  name: 'Welcome',
  direction: 'gateway→device',
  validIn: ['opening'],
  sequenced: 'never',
  doc: 'Answers Hello or Resume: the session is open on this carrier.',
  fields: [
    {
      no: 1,
      name: 'sessionId',
      type: 'string',
      required: true,
      doc: 'Session id, for Resume and poll headers.',
    },
    {
      no: 2,
      name: 'resumeToken',
      type: 'string',
      required: true,
      doc: 'Secret that proves the right to Resume.',
    },
    {
      no: 3,
      name: 'token',
      type: 'string',
      required: true,
      doc: 'Short-lived JWT that can authenticate a later Hello.',
    },
    {
      no: 4,
      name: 'tokenExpiresAt',
      type: 'uint',
      required: true,
      doc: 'Token expiry, ms since the Unix epoch.',
    },
    { no: 5, name: 'heartbeatMs', type: 'uint', required: true, doc: 'Send a Ping at least this often.' },
    {
      no: 6,
      name: 'resumed',
      type: 'bool',
      required: true,
      doc: 'True when this continues an existing session.',
    },
    {
      no: 7,
      name: 'lastSeq',
      type: 'uint',
      required: true,
      doc: 'Highest seq assigned so far in this session.',
    },
    {
      no: 8,
      name: 'resumeWindowMs',
      type: 'uint',
      required: true,
      doc: 'How long a detached session is kept for Resume.',
    },
    { no: 9, name: 'maxFrameBytes', type: 'uint', required: true, doc: 'Largest frame the gateway accepts.' },
    {
      no: 10,
      name: 'serverTime',
      type: 'uint',
      required: true,
      doc: 'Gateway clock, ms since the Unix epoch.',
    },
    {
      no: 11,
      name: 'compression',
      type: 'string',
      required: false,
      doc: 'Frame compression on this carrier from the next frame on (§4.4): `deflate`; absent: none.',
    },
  ],
};

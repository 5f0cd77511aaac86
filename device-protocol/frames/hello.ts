import { Kind } from '../messages.ts';
import type { FrameSpec, MessageSpec } from './schema.ts';

/** Device capabilities, nested in Hello field 6. Extended by later issues with new field numbers only. */
export const capabilitiesSpec: MessageSpec = {
  name: 'Capabilities',
  fields: [
    { no: 1, name: 'screenWidth', type: 'uint', required: false, doc: 'Screen width in pixels.' },
    { no: 2, name: 'screenHeight', type: 'uint', required: false, doc: 'Screen height in pixels.' },
    {
      no: 3,
      name: 'imageFormats',
      type: 'strings',
      required: false,
      doc: 'Image formats the device renders, e.g. `jpeg`, `png`, `webp`.',
    },
    { no: 4, name: 'animates', type: 'bool', required: false, doc: 'Can show animated images.' },
    {
      no: 5,
      name: 'imageBudgetBytes',
      type: 'uint',
      required: false,
      doc: 'Largest image the device wants by default.',
    },
    { no: 6, name: 'model', type: 'string', required: false, doc: 'Handset model name.' },
    {
      no: 7,
      name: 'encodings',
      type: 'strings',
      required: false,
      doc: 'Compact body encodings the device expands (§9), e.g. `im.compact`.',
    },
    {
      no: 8,
      name: 'compression',
      type: 'strings',
      required: false,
      doc: 'Frame compression schemes the device speaks on a WebSocket carrier (§4.4), e.g. `deflate`.',
    },
  ],
};

export const helloSpec: FrameSpec = {
  kind: Kind.Hello,
  name: 'Hello',
  direction: 'device→gateway',
  validIn: ['opening'],
  sequenced: 'never',
  doc: 'First frame of a new session: authenticate with IMEI and secret, or IMEI and a still-valid token.',
  fields: [
    {
      no: 1,
      name: 'version',
      type: 'uint',
      required: true,
      doc: 'Highest protocol version the device speaks (≥ 1); see §8.',
    },
    {
      no: 2,
      name: 'imei',
      type: 'string',
      required: true,
      doc: 'The 15-digit IMEI the device is provisioned by.',
    },
    { no: 3, name: 'secret', type: 'string', required: false, doc: 'The device secret (first login).' },
    {
      no: 4,
      name: 'token',
      type: 'string',
      required: false,
      doc: 'JWT from an earlier Welcome, instead of the secret.',
    },
    {
      no: 5,
      name: 'client',
      type: 'string',
      required: false,
      doc: 'Client software name/version, for logs.',
    },
    {
      no: 6,
      name: 'caps',
      type: 'message',
      message: capabilitiesSpec,
      required: false,
      doc: 'Device capabilities (nested Capabilities message).',
    },
  ],
};

/**
 * Sample frames for tests: for every kind, one with every optional field
 * present and one with only the required fields. Shared by the codec tests
 * and the spec test; not part of the public surface.
 */

import { type Frame, Kind } from '../device-protocol/messages.ts';

export interface FrameSample {
  name: string;
  frame: Frame;
}

export const FULL_FRAMES: readonly Frame[] = [
  {
    kind: Kind.Hello,
    version: 1,
    imei: '356938035643809',
    secret: 'correct horse',
    token: 'eyJhbGciOiJIUzI1NiJ9.e30.sig',
    client: 'mmgw-handset/0.1',
    caps: {
      screenWidth: 240,
      screenHeight: 320,
      imageFormats: ['jpeg', 'png'],
      animates: false,
      imageBudgetBytes: 65_536,
      model: 'Nokia 6300',
      encodings: ['im.compact'],
      compression: ['deflate'],
    },
  },
  {
    kind: Kind.Welcome,
    sessionId: 's-9f3a',
    resumeToken: 'r-77c1',
    token: 'eyJhbGciOiJIUzI1NiJ9.e30.sig',
    tokenExpiresAt: 1_767_225_600_000,
    heartbeatMs: 30_000,
    resumed: true,
    lastSeq: 41,
    resumeWindowMs: 120_000,
    maxFrameBytes: 1_048_576,
    serverTime: 1_767_222_000_000,
    compression: 'deflate',
  },
  { kind: Kind.Resume, version: 1, sessionId: 's-9f3a', resumeToken: 'r-77c1', lastSeq: 40 },
  { kind: Kind.Ack, seq: 41 },
  { kind: Kind.Ping, nonce: 7 },
  { kind: Kind.Pong, nonce: 7 },
  { kind: Kind.Request, id: 'c-1', method: 'echo', body: { text: 'hi', n: [1, -2, 3.5] } },
  { kind: Kind.Response, seq: 42, id: 'c-1', body: { text: 'hi' } },
  {
    kind: Kind.Event,
    seq: 43,
    name: 'mail.new',
    body: { folder: 'INBOX', uid: 4711, from: 'anna@example.org', subject: 'Grüße', flags: ['\\Recent'] },
  },
  {
    kind: Kind.Error,
    seq: 44,
    id: 'c-2',
    code: 'request.timeout',
    message: 'The backend did not answer in time',
    fatal: false,
    retryAfterMs: 1000,
  },
  {
    kind: Kind.Bye,
    code: 'session.draining',
    message: 'node draining',
    resumable: true,
    reconnectAfterMs: 2500,
  },
];

export const MINIMAL_FRAMES: readonly Frame[] = [
  { kind: Kind.Hello, version: 1, imei: '356938035643809' },
  {
    kind: Kind.Welcome,
    sessionId: '',
    resumeToken: '',
    token: '',
    tokenExpiresAt: 0,
    heartbeatMs: 0,
    resumed: false,
    lastSeq: 0,
    resumeWindowMs: 0,
    maxFrameBytes: 0,
    serverTime: 0,
  },
  { kind: Kind.Resume, version: 1, sessionId: 's', resumeToken: 'r', lastSeq: 0 },
  { kind: Kind.Ack, seq: 0 },
  { kind: Kind.Ping, nonce: 0 },
  { kind: Kind.Pong, nonce: 0 },
  { kind: Kind.Request, id: 'c-1', method: 'echo' },
  { kind: Kind.Response, seq: 1, id: 'c-1' },
  { kind: Kind.Event, seq: 1, name: 'x' },
  { kind: Kind.Error, code: 'session.closed', message: '', fatal: true },
  { kind: Kind.Bye, code: 'session.closed', message: '', resumable: false },
];

/** The frames of SPEC.md's worked examples (§2.7); spec.test.ts checks the hex printed there. */
export const SPEC_EXAMPLES = {
  hello: {
    kind: Kind.Hello,
    version: 1,
    imei: '356938035643809',
    secret: 'k9Xq',
    caps: { screenWidth: 240, imageFormats: ['jpeg', 'png'] },
  } satisfies Frame,
  event: {
    kind: Kind.Event,
    seq: 300,
    name: 'mail.new',
    body: { uid: 4711, subject: 'Hi', seen: false },
  } satisfies Frame,
};

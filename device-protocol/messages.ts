/**
 * The frames of the device protocol, as TypeScript types. The wire format
 * (integer field keys, varints) is defined by the codec and by SPEC.md; this
 * file is the shared vocabulary of codec, SDK and edge.
 *
 * Directions: D→G device to gateway, G→D gateway to device.
 * Sequenced frames (Response, Event, and Error answering a request) carry a
 * per-session `seq` starting at 1; the device acks cumulatively and on resume
 * says the last seq it saw; the gateway replays every later one.
 */

export const PROTOCOL_VERSION = 1;

/** A dynamic value carried in request/response/event bodies. */
export type Value = null | boolean | number | string | Uint8Array | Value[] | { [key: string]: Value };

export enum Kind {
  Hello = 1,
  Welcome = 2,
  Resume = 3,
  Ack = 4,
  Ping = 5,
  Pong = 6,
  Request = 7,
  Response = 8,
  Event = 9,
  Error = 10,
  Bye = 11,
}

/** Device capabilities declared at hello (the transcoder issue extends this). */
export interface Capabilities {
  screenWidth?: number;
  screenHeight?: number;
  imageFormats?: string[];
  animates?: boolean;
  imageBudgetBytes?: number;
  model?: string;
  /** Compact body encodings the device expands (SPEC.md §9), e.g. `im.compact`. */
  encodings?: string[];
  /** Frame compression schemes the device speaks on a WebSocket carrier (SPEC.md §4.4), e.g. `deflate`. */
  compression?: string[];
}

/** D→G, first frame of a new session: authenticate with IMEI + secret, or with a still-valid JWT. */
export interface Hello {
  kind: Kind.Hello;
  version: number;
  imei: string;
  secret?: string;
  token?: string;
  client?: string;
  caps?: Capabilities;
}

/** D→G, first frame on a new carrier to continue an existing session. */
export interface Resume {
  kind: Kind.Resume;
  version: number;
  sessionId: string;
  resumeToken: string;
  /** The highest seq the device has received (0 if none). */
  lastSeq: number;
}

/** G→D, answers Hello or Resume. */
export interface Welcome {
  kind: Kind.Welcome;
  sessionId: string;
  resumeToken: string;
  /** Short-lived JWT that can authenticate a later Hello without the secret. */
  token: string;
  tokenExpiresAt: number;
  /** The device sends a Ping at least this often; silence for 2.5× this ends the carrier. */
  heartbeatMs: number;
  resumed: boolean;
  /** Highest seq the gateway has assigned so far in this session. */
  lastSeq: number;
  /** How long a disconnected session is kept for resume. */
  resumeWindowMs: number;
  maxFrameBytes: number;
  serverTime: number;
  /** Frame compression on this carrier from the next frame on (SPEC.md §4.4); absent: none. */
  compression?: string;
}

/** D→G cumulative ack: the device holds every sequenced frame up to and including `seq`. */
export interface Ack {
  kind: Kind.Ack;
  seq: number;
}

/** Either direction; the other side answers with Pong carrying the same nonce. */
export interface Ping {
  kind: Kind.Ping;
  nonce: number;
}

export interface Pong {
  kind: Kind.Pong;
  nonce: number;
}

/**
 * D→G application request. `id` is the client id: unique per device, resent
 * unchanged after a reconnect; the gateway answers a repeated id from its
 * memory instead of doing the work twice.
 */
export interface Request {
  kind: Kind.Request;
  id: string;
  method: string;
  body?: Value;
}

/** G→D, sequenced: the successful answer to a Request. */
export interface Response {
  kind: Kind.Response;
  seq: number;
  id: string;
  body?: Value;
}

/** G→D, sequenced: something pushed (new mail, chat message, …). */
export interface Event {
  kind: Kind.Event;
  seq: number;
  name: string;
  body?: Value;
}

/**
 * G→D. With `id` it answers a Request and is sequenced (`seq` set).
 * Without `id` it is about the session; `fatal` means the carrier closes next.
 */
export interface ErrorFrame {
  kind: Kind.Error;
  seq?: number;
  id?: string;
  code: string;
  message: string;
  fatal: boolean;
  retryAfterMs?: number;
}

/** G→D, the last frame before the gateway closes the carrier. */
export interface Bye {
  kind: Kind.Bye;
  code: string;
  message: string;
  /** May the device Resume this session (true) or must it Hello anew (false)? */
  resumable: boolean;
  reconnectAfterMs?: number;
}

export type Frame =
  | Hello
  | Resume
  | Welcome
  | Ack
  | Ping
  | Pong
  | Request
  | Response
  | Event
  | ErrorFrame
  | Bye;

export type SequencedFrame = Response | Event | (ErrorFrame & { seq: number });

export function isSequenced(frame: Frame): frame is SequencedFrame {
  return (
    frame.kind === Kind.Response ||
    frame.kind === Kind.Event ||
    (frame.kind === Kind.Error && typeof frame.seq === 'number')
  );
}

/** Decoder limits; every one is enforced and has a test that hits it. */
export interface DecodeLimits {
  maxFrameBytes: number;
  maxStringBytes: number;
  maxBytesLength: number;
  maxListLength: number;
  maxMapEntries: number;
  maxDepth: number;
  /** For long-poll batches: most frames in one batch. */
  maxBatchFrames: number;
}

export const DEFAULT_LIMITS: DecodeLimits = {
  maxFrameBytes: 1024 * 1024,
  maxStringBytes: 256 * 1024,
  maxBytesLength: 1024 * 1024,
  maxListLength: 10_000,
  maxMapEntries: 1_000,
  maxDepth: 16,
  maxBatchFrames: 1_000,
};

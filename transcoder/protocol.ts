/**
 * How other roles reach the transcoder over the bus: subject names, payloads
 * and a small client. Every transcoder subscribes in the queue group
 * `transcoders`, so each request goes to exactly one of them.
 *
 * The source travels inside the request. With NATS that makes the server's
 * max_payload (1 MiB by default) the effective source limit: in cluster mode
 * set it above transcoder.maxSourceBytes plus a little for the envelope
 * (`max_payload: 32MB` in nats-server.conf for the default 25 MB; the server
 * takes up to 64 MB and warns above 8 MB), or lower maxSourceBytes to fit.
 * A larger source is refused by the NATS client before it is sent, as
 * bus.bad_message naming max_payload (not retryable), and the caller offers
 * the original; role-nats.test.ts checks both sides of that bound.
 */
import type { Bus } from '../server/index.ts';
import type { TextChunk } from './body.ts';
import type { ImageVariant, ImageVariantSpec } from './image.ts';

export const TranscoderSubjects = {
  /** ImageRequest → ImageReply. */
  image: 'mmgw.transcode.image',
  /** BodyRequest → BodyReply. */
  body: 'mmgw.transcode.body',
} as const;

export const TRANSCODER_QUEUE_GROUP = 'transcoders';

export interface ImageRequest {
  source: Uint8Array;
  spec: ImageVariantSpec;
}

export interface ImageReply extends ImageVariant {
  /** Served from the content-addressed cache. */
  cached: boolean;
}

/** Exactly one of html or text. */
export interface BodyRequest {
  html?: string;
  text?: string;
  /** UTF-8 bytes per chunk; default the role's bodyChunkBytes. */
  chunkBytes?: number;
  /** The token of the previous chunk, to get the next one. */
  more?: string;
}

export type BodyReply = TextChunk;

export interface TranscoderClientOptions {
  /** Bus timeout of one request; default 30 s (a job may wait in the queue, then run up to its own limit). */
  timeoutMs?: number;
}

export interface ImageRequestOptions {
  /** The caller does not use the source after the call: the in-process bus may move it (no copy). */
  handOver?: boolean;
}

/** What a transport (or the CLI, or a test) uses to ask any transcoder. */
export class TranscoderClient {
  private readonly timeoutMs: number;

  constructor(
    private readonly bus: Bus,
    options: TranscoderClientOptions = {},
  ) {
    this.timeoutMs = options.timeoutMs ?? 30_000;
  }

  /**
   * Throws GatewayError transcode.* (or bus.*): the caller then offers the original with its size.
   * `handOver: true` gives the source to the bus (RequestOptions.transfer): the in-process bus
   * moves it instead of copying it, and `source` (with every view of its memory) is unusable
   * afterwards, so read what is needed of it first.
   */
  image(source: Uint8Array, spec: ImageVariantSpec, options: ImageRequestOptions = {}): Promise<ImageReply> {
    const bytes = plainBytes(source);
    const request: ImageRequest = { source: bytes, spec };
    return this.bus.request<ImageReply>(TranscoderSubjects.image, request, {
      timeoutMs: this.timeoutMs,
      ...(options.handOver === true ? { transfer: [bytes] } : {}),
    });
  }

  body(request: BodyRequest): Promise<BodyReply> {
    return this.bus.request<BodyReply>(TranscoderSubjects.body, request, { timeoutMs: this.timeoutMs });
  }
}

/**
 * A plain Uint8Array view of the same memory (no copy). msgpackr packs a
 * plain Uint8Array about twice as fast as a Buffer (measured: 6 MB in 4.6
 * versus 11 ms), and a source is the largest thing on the bus.
 */
export function plainBytes(bytes: Uint8Array): Uint8Array {
  return bytes.constructor === Uint8Array
    ? bytes
    : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

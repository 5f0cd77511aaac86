/**
 * Frame compression on a WebSocket carrier (SPEC.md §4.4): raw DEFLATE with
 * the context kept for the life of the carrier, one sync flush per frame,
 * the flush's fixed 4-byte tail (00 00 ff ff) left off, as permessage-deflate
 * (RFC 7692) does, but at the frame layer so that it works with every
 * WebSocket stack (the gateway's uWebSockets.js build has no
 * permessage-deflate) and stays under the protocol's own limits.
 *
 * A compressed frame starts with the marker byte 0x81 instead of the version
 * byte 0x01; a frame that starts with 0x01 is plain and does not touch the
 * context. The sender decides per frame (tiny and large frames go plain), the
 * receiver sees it from the first byte. Because the context belongs to the
 * carrier, a new carrier (after a cut, a resume on another edge, a switch to
 * long-poll) starts from an empty one on both sides: nothing about it has to
 * follow the session.
 *
 * The window is fixed at 2^10 bytes in both directions: chat frames repeat
 * their names, account ids and JIDs within a few hundred bytes.
 *
 * Parking: a live context costs ~13 KiB (compressor) and ~10 KiB
 * (decompressor) of tables. After a sync flush all either side needs to go
 * on is the last window of plain bytes, so an idle carrier can `park()` its
 * contexts down to that 1 KiB and later start a fresh zlib stream primed with
 * it as the dictionary: the bytes on the wire are a valid continuation for a
 * peer that never parked (a match reaches at most 1 KiB back, which both
 * sides hold). Nothing on the wire says so; each side parks on its own.
 *
 * Pure (pako, no `node:` imports): runs in browsers and handsets too.
 */
import {
  ZStream,
  Z_DEFAULT_STRATEGY,
  Z_STREAM_END,
  Z_SYNC_FLUSH,
  zlibDeflate,
  zlibDeflateInit2,
  zlibDeflateSetDictionary,
  zlibInflate,
  zlibInflateInit2,
  zlibInflateSetDictionary,
} from 'pako';
import { GatewayError } from './errors.ts';

/** The Hello caps `compression` entry (and Welcome `compression` value) of this scheme. */
export const DEFLATE = 'deflate';
/** First byte of a compressed frame (a plain frame starts with its version, 0x01). */
export const COMPRESSED_FRAME = 0x81;
/** log2 of the DEFLATE window, both directions (SPEC.md §4.4). */
export const WINDOW_BITS = 10;
/** Frames shorter than this go plain: an Ack or a Ping would only grow. */
export const MIN_COMPRESS_BYTES = 24;
/** Frames longer than this go plain: attachment chunks are compressed data already, and costly to deflate. */
export const MAX_COMPRESS_BYTES = 16 * 1024;

const Z_DEFLATED = 8;
const LEVEL = 6;
/**
 * zlib memLevel 1 with the classic hash (pako's `legacyHash`): a 256-entry
 * hash table instead of the 32,768 entries (64 KiB) pako's faster hash needs,
 * enough for frames of a few hundred bytes in a 1 KiB window.
 */
const MEM_LEVEL = 1;
const LEGACY_HASH = true;
const TAIL = new Uint8Array([0x00, 0x00, 0xff, 0xff]);
const Z_BUF_ERROR = -5;

/** Should this plain frame be compressed? (The sender's choice; any choice decodes.) */
export function worthCompressing(frame: Uint8Array): boolean {
  return frame.length >= MIN_COMPRESS_BYTES && frame.length <= MAX_COMPRESS_BYTES;
}

/** The last WINDOW bytes a context saw (a ring): all a parked context keeps. */
class History {
  readonly #ring = new Uint8Array(1 << WINDOW_BITS);
  #pos = 0;
  #filled = 0;

  push(bytes: Uint8Array): void {
    const ring = this.#ring;
    const size = ring.length;
    if (bytes.length >= size) {
      ring.set(bytes.subarray(bytes.length - size));
      this.#pos = 0;
      this.#filled = size;
      return;
    }
    const first = Math.min(bytes.length, size - this.#pos);
    ring.set(bytes.subarray(0, first), this.#pos);
    ring.set(bytes.subarray(first), 0);
    this.#pos = (this.#pos + bytes.length) % size;
    this.#filled = Math.min(size, this.#filled + bytes.length);
  }

  /** The bytes in order, oldest first (a copy). */
  bytes(): Uint8Array {
    const ring = this.#ring;
    if (this.#filled < ring.length) return ring.slice(0, this.#filled);
    const out = new Uint8Array(ring.length);
    out.set(ring.subarray(this.#pos));
    out.set(ring.subarray(0, this.#pos), ring.length - this.#pos);
    return out;
  }

  get empty(): boolean {
    return this.#filled === 0;
  }
}

/**
 * One direction's zlib stream of a carrier, or (parked) just the window it
 * can be rebuilt from.
 */
abstract class Context {
  protected strm: ZStream | undefined;
  protected readonly history = new History();

  constructor() {
    this.strm = this.open();
  }

  /** Is a live zlib context held (false when parked)? */
  get active(): boolean {
    return this.strm !== undefined;
  }

  /** Drops the zlib context and keeps only the last window; the next frame picks up from it. */
  park(): void {
    this.strm = undefined;
  }

  /** The live stream, rebuilt from the window when parked. */
  protected stream(): ZStream {
    this.strm ??= this.open();
    return this.strm;
  }

  /** A fresh zlib stream primed with the window (the history) as its dictionary. */
  protected abstract open(): ZStream;
}

/** The sending side of one carrier. */
export class FrameCompressor extends Context {
  protected open(): ZStream {
    const strm = new ZStream();
    let status = zlibDeflateInit2(
      strm,
      LEVEL,
      Z_DEFLATED,
      -WINDOW_BITS,
      MEM_LEVEL,
      Z_DEFAULT_STRATEGY,
      LEGACY_HASH,
    );
    if (status === 0 && !this.history.empty) status = zlibDeflateSetDictionary(strm, this.history.bytes());
    if (status !== 0) throw new GatewayError('internal', `deflate init failed (${status})`);
    return strm;
  }

  /** The compressed form of one encoded frame: 0x81, then its DEFLATE bytes up to the sync flush's tail. */
  compress(frame: Uint8Array): Uint8Array {
    const strm = this.stream();
    strm.input = frame;
    strm.next_in = 0;
    strm.avail_in = frame.length;
    let out = new Uint8Array(frame.length + 64);
    out[0] = COMPRESSED_FRAME;
    strm.output = out;
    strm.next_out = 1;
    strm.avail_out = out.length - 1;
    for (;;) {
      const status = zlibDeflate(strm, Z_SYNC_FLUSH);
      if (status !== 0 && status !== Z_BUF_ERROR)
        throw new GatewayError('internal', `deflate failed (${status})`);
      if (strm.avail_out > 0) break;
      const bigger = new Uint8Array(out.length * 2);
      bigger.set(out);
      strm.output = out = bigger;
      strm.avail_out = out.length - strm.next_out;
    }
    const end = strm.next_out;
    strm.input = EMPTY;
    if (end < TAIL.length + 1 || TAIL.some((b, i) => out[end - TAIL.length + i] !== b)) {
      throw new GatewayError('internal', 'deflate sync flush without its tail');
    }
    this.history.push(frame);
    // A sync flush ends with an empty stored block: 00 00 ff ff, implied on the wire.
    return out.subarray(0, end - TAIL.length);
  }
}

const EMPTY = new Uint8Array(0);

/** The receiving side of one carrier. */
export class FrameDecompressor extends Context {
  #broken = false;

  protected open(): ZStream {
    const strm = new ZStream();
    let status = zlibInflateInit2(strm, -WINDOW_BITS);
    if (status === 0 && !this.history.empty) status = zlibInflateSetDictionary(strm, this.history.bytes());
    if (status !== 0) throw new GatewayError('internal', `inflate init failed (${status})`);
    return strm;
  }

  /**
   * The plain frame inside a compressed one (`bytes` starts with 0x81).
   * Stops as soon as the output passes maxFrameBytes, so a small hostile
   * frame cannot make it allocate much. Throws GatewayError
   * `protocol.frame_too_large` or `protocol.bad_frame`; after a throw the
   * context is unusable (the carrier must close).
   */
  decompress(bytes: Uint8Array, maxFrameBytes: number): Uint8Array {
    if (this.#broken) throw new GatewayError('protocol.bad_frame', 'The compression context is broken.');
    if (bytes.length < 2 || bytes[0] !== COMPRESSED_FRAME) {
      throw new GatewayError('protocol.bad_frame', 'Not a compressed frame.');
    }
    const strm = this.stream();
    let out = new Uint8Array(Math.min(maxFrameBytes + 1, Math.max(256, bytes.length * 4)));
    strm.output = out;
    strm.next_out = 0;
    strm.avail_out = out.length;
    try {
      for (const input of [bytes.subarray(1), TAIL]) {
        strm.input = input;
        strm.next_in = 0;
        strm.avail_in = input.length;
        for (;;) {
          const status = zlibInflate(strm, Z_SYNC_FLUSH);
          if (status === Z_STREAM_END) {
            throw new GatewayError('protocol.bad_frame', 'A compressed frame ended the DEFLATE stream.');
          }
          if (status !== 0 && status !== Z_BUF_ERROR) {
            throw new GatewayError('protocol.bad_frame', `Bad compressed frame: ${strm.msg || status}.`);
          }
          if (strm.next_out > maxFrameBytes) {
            throw new GatewayError(
              'protocol.frame_too_large',
              `A compressed frame expands past the limit of ${maxFrameBytes} bytes.`,
            );
          }
          if (strm.avail_out > 0) break;
          const bigger = new Uint8Array(Math.min(maxFrameBytes + 1, out.length * 2));
          bigger.set(out);
          strm.output = out = bigger;
          strm.avail_out = out.length - strm.next_out;
        }
        if (strm.avail_in !== 0) throw new GatewayError('protocol.bad_frame', 'Bad compressed frame.');
      }
    } catch (err) {
      this.#broken = true;
      throw err;
    } finally {
      strm.input = EMPTY;
    }
    if (strm.next_out === 0) {
      this.#broken = true;
      throw new GatewayError('protocol.bad_frame', 'A compressed frame holds no frame.');
    }
    const frame = out.subarray(0, strm.next_out);
    this.history.push(frame);
    return frame;
  }
}

/**
 * Both directions of one compressing carrier: what the gateway's WebSocket
 * carrier, the SDK's and a test client each hold once Welcome said
 * `compression` (a carrier that does not compress holds none).
 */
export class CarrierCompression {
  readonly #deflate = new FrameCompressor();
  readonly #inflate = new FrameDecompressor();

  /** The frame as it goes on the air: compressed when worth it and `allowed`, else as it is. */
  outgoing(frame: Uint8Array, allowed = true): Uint8Array {
    return allowed && worthCompressing(frame) ? this.#deflate.compress(frame) : frame;
  }

  /** The plain frame inside a compressed one (FrameDecompressor.decompress). */
  inflate(bytes: Uint8Array, maxFrameBytes: number): Uint8Array {
    return this.#inflate.decompress(bytes, maxFrameBytes);
  }

  /** Live zlib contexts (0–2). */
  contexts(): number {
    return (this.#deflate.active ? 1 : 0) + (this.#inflate.active ? 1 : 0);
  }

  /** Parks both contexts down to their last window (~1 KiB each); the next frame picks up from there. */
  park(): void {
    this.#deflate.park();
    this.#inflate.park();
  }
}

/**
 * The plain frame of bytes received on a carrier with `compression`
 * (undefined: the carrier does not compress): a plain frame as it is, a
 * compressed one inflated. Throws GatewayError `protocol.bad_frame` (also
 * for a compressed frame where there is no compression) or
 * `protocol.frame_too_large`.
 */
export function plainFrame(
  bytes: Uint8Array,
  compression: CarrierCompression | undefined,
  maxFrameBytes: number,
): Uint8Array {
  if (bytes[0] !== COMPRESSED_FRAME) return bytes;
  if (compression === undefined) {
    throw new GatewayError(
      'protocol.bad_frame',
      'A compressed frame on a carrier without compression (SPEC.md §4.4).',
    );
  }
  return compression.inflate(bytes, maxFrameBytes);
}

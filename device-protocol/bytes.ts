/**
 * Byte-level building blocks of the device protocol: unsigned LEB128 varints
 * (up to 2^53-1, the largest integer a JavaScript number holds exactly),
 * little-endian float64 and length-prefixed UTF-8. A growable writer for the
 * encoder and a bounds-checked reader for the decoder.
 *
 * The reader throws ProtocolError; codec.ts catches it at its boundary and
 * returns it, so nothing thrown here ever reaches a caller of decodeFrame.
 */

import { type ErrorCode, ProtocolError } from './errors.ts';

const utf8Encoder = new TextEncoder();
// fatal: invalid UTF-8 is a bad frame, not silently U+FFFD.
// ignoreBOM: a string that starts with U+FEFF must come back with it.
const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Shared scratch for float64 conversion; little-endian regardless of the platform. */
const floatView = new DataView(new ArrayBuffer(8));
const floatBytes = new Uint8Array(floatView.buffer);

/** The longest varint we accept: 8 bytes carry 56 bits, enough for 2^53-1. */
export const MAX_VARINT_BYTES = 8;

export function fail(code: ErrorCode, message: string, field?: string): never {
  throw new ProtocolError(code, message, field === undefined ? {} : { field });
}

/** Bytes an unsigned varint of `v` (0 ≤ v ≤ 2^53-1) takes. */
export function varintSize(v: number): number {
  if (v < 0x80) return 1;
  if (v < 0x4000) return 2;
  if (v < 0x200000) return 3;
  if (v < 0x10000000) return 4;
  if (v < 0x800000000) return 5;
  if (v < 0x40000000000) return 6;
  if (v < 0x2000000000000) return 7;
  return 8;
}

/** Writes unsigned LEB128 `v` (a safe integer ≥ 0) at `pos` and returns the position after it. */
export function writeVarintAt(buf: Uint8Array, pos: number, v: number): number {
  // Above 2^31 bit operators would truncate: divide instead.
  while (v > 0x7fffffff) {
    buf[pos++] = (v % 128) | 0x80;
    v = Math.floor(v / 128);
  }
  while (v > 0x7f) {
    buf[pos++] = (v & 0x7f) | 0x80;
    v >>>= 7;
  }
  buf[pos++] = v;
  return pos;
}

/**
 * Writes UTF-8 of `s` at `pos` by hand: for the short strings that dominate
 * frames (ids, names, map keys) this beats a TextEncoder call and its
 * subarray. Lone surrogates become U+FFFD, exactly as TextEncoder does.
 * The caller reserved `s.length * 3` bytes.
 */
function writeUtf8Short(buf: Uint8Array, pos: number, s: string): number {
  const start = pos;
  const n = s.length;
  for (let i = 0; i < n; i++) {
    let c = s.charCodeAt(i);
    if (c < 0x80) {
      buf[pos++] = c;
    } else if (c < 0x800) {
      buf[pos++] = 0xc0 | (c >> 6);
      buf[pos++] = 0x80 | (c & 0x3f);
    } else {
      if (c >= 0xd800 && c <= 0xdfff) {
        if (c <= 0xdbff && i + 1 < n) {
          const d = s.charCodeAt(i + 1);
          if (d >= 0xdc00 && d <= 0xdfff) {
            i++;
            const cp = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
            buf[pos++] = 0xf0 | (cp >> 18);
            buf[pos++] = 0x80 | ((cp >> 12) & 0x3f);
            buf[pos++] = 0x80 | ((cp >> 6) & 0x3f);
            buf[pos++] = 0x80 | (cp & 0x3f);
            continue;
          }
        }
        c = 0xfffd;
      }
      buf[pos++] = 0xe0 | (c >> 12);
      buf[pos++] = 0x80 | ((c >> 6) & 0x3f);
      buf[pos++] = 0x80 | (c & 0x3f);
    }
  }
  return pos - start;
}

/** A growable output buffer. One instance is reused by the encoder; `finish` copies out. */
export class ByteWriter {
  buf: Uint8Array;
  pos = 0;

  constructor(initialSize = 512) {
    this.buf = new Uint8Array(initialSize);
  }

  ensure(n: number): void {
    if (this.pos + n > this.buf.length) this.grow(n);
  }

  private grow(n: number): void {
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = new Uint8Array(size);
    // Copy the whole old buffer, not just [0, pos): string writing reserves
    // room and writes past pos before it moves pos.
    next.set(this.buf);
    this.buf = next;
  }

  byte(b: number): void {
    if (this.pos >= this.buf.length) this.grow(1);
    this.buf[this.pos++] = b;
  }

  /** Unsigned LEB128; the caller guarantees a safe integer ≥ 0. */
  varint(v: number): void {
    if (v < 0x80 && this.pos < this.buf.length) {
      this.buf[this.pos++] = v;
      return;
    }
    this.ensure(MAX_VARINT_BYTES);
    this.pos = writeVarintAt(this.buf, this.pos, v);
  }

  float64(v: number): void {
    this.ensure(8);
    floatView.setFloat64(0, v, true);
    this.buf.set(floatBytes, this.pos);
    this.pos += 8;
  }

  /** Length-prefixed raw bytes. */
  bytes(b: Uint8Array): void {
    this.varint(b.length);
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  /** Length-prefixed UTF-8; returns the number of UTF-8 bytes (without the prefix). */
  string(s: string): number {
    const n = s.length;
    if (n <= 42) {
      // At most 42 × 3 = 126 bytes: the length always fits one varint byte.
      this.ensure(1 + n * 3);
      const start = this.pos + 1;
      const len = writeUtf8Short(this.buf, start, s);
      this.buf[this.pos] = len;
      this.pos = start + len;
      return len;
    }
    // Reserve the prefix for the worst case (3 bytes per UTF-16 unit), encode,
    // then move the bytes down if the real length needs a shorter prefix.
    const max = n * 3;
    const reserved = varintSize(max);
    this.ensure(reserved + max);
    const at = this.pos;
    const start = at + reserved;
    const len = utf8Encoder.encodeInto(s, this.buf.subarray(start)).written;
    const needed = varintSize(len);
    if (needed !== reserved) this.buf.copyWithin(at + needed, start, start + len);
    this.varint(len);
    this.pos += len;
    return len;
  }

  /**
   * Inserts the unsigned varint `v` at `at`, moving [at, pos) up. Used to
   * length-prefix a nested part once its size is known.
   */
  insertVarint(at: number, v: number): void {
    const size = varintSize(v);
    this.ensure(size);
    this.buf.copyWithin(at + size, at, this.pos);
    const end = this.pos + size;
    this.pos = at;
    this.varint(v);
    this.pos = end;
  }

  /** A copy of what was written, so the writer can be reused. */
  finish(): Uint8Array {
    return this.buf.slice(0, this.pos);
  }
}

/** A bounds-checked cursor over one frame. `end` narrows while a nested part is read. */
export class ByteReader {
  readonly buf: Uint8Array;
  pos: number;
  end: number;

  constructor(buf: Uint8Array, pos = 0, end = buf.length) {
    this.buf = buf;
    this.pos = pos;
    this.end = end;
  }

  get remaining(): number {
    return this.end - this.pos;
  }

  byte(field?: string): number {
    if (this.pos >= this.end) fail('protocol.bad_frame', 'frame truncated', field);
    return this.buf[this.pos++]!;
  }

  /**
   * Unsigned LEB128 up to 2^53-1. Over-long encodings (a final 0x00 byte
   * after continuation bytes) are rejected so that every value has exactly
   * one encoding.
   */
  varint(field?: string): number {
    const buf = this.buf;
    const end = this.end;
    let pos = this.pos;
    if (pos >= end) fail('protocol.bad_frame', 'frame truncated', field);
    // Every read below follows a `pos < end` check, and `end` never exceeds buf.length.
    let b = buf[pos++]!;
    if (b < 0x80) {
      this.pos = pos;
      return b;
    }
    let result = b & 0x7f;
    let mul = 128;
    for (let i = 1; i < MAX_VARINT_BYTES; i++) {
      if (pos >= end) fail('protocol.bad_frame', 'frame truncated in a varint', field);
      b = buf[pos++]!;
      result += (b & 0x7f) * mul;
      if (b < 0x80) {
        if (b === 0) fail('protocol.bad_frame', 'over-long varint', field);
        if (result > Number.MAX_SAFE_INTEGER) fail('protocol.bad_frame', 'varint above 2^53-1', field);
        this.pos = pos;
        return result;
      }
      mul *= 128;
    }
    return fail('protocol.bad_frame', 'varint longer than 8 bytes', field);
  }

  float64(field?: string): number {
    if (this.end - this.pos < 8) fail('protocol.bad_frame', 'frame truncated in a float64', field);
    for (let i = 0; i < 8; i++) floatBytes[i] = this.buf[this.pos + i]!;
    this.pos += 8;
    return floatView.getFloat64(0, true);
  }

  /**
   * Reads a length prefix and checks it against `max` (→ protocol.limit) and
   * against the bytes left (→ protocol.bad_frame) before anyone allocates.
   */
  length(max: number, what: string, field?: string): number {
    const len = this.varint(field);
    if (len > max) fail('protocol.limit', `${what} of ${len} bytes exceeds the limit of ${max}`, field);
    if (len > this.end - this.pos)
      fail('protocol.bad_frame', `${what} runs past the end of the frame`, field);
    return len;
  }

  /** UTF-8 of `len` bytes (already checked by `length`). */
  utf8(len: number, field?: string): string {
    const buf = this.buf;
    const start = this.pos;
    const end = start + len;
    this.pos = end;
    if (len <= 32) {
      // ASCII fast path; anything else goes to the strict decoder.
      let s = '';
      let i = start;
      for (; i < end; i++) {
        const c = buf[i]!;
        if (c >= 0x80) break;
        s += String.fromCharCode(c);
      }
      if (i === end) return s;
    }
    try {
      return utf8Decoder.decode(buf.subarray(start, end));
    } catch {
      return fail('protocol.bad_frame', 'invalid UTF-8', field);
    }
  }

  /**
   * A copy of `len` bytes (already checked by `length`): the frame buffer may
   * be reused or detached (uWebSockets.js) once decoding returns. Copied into
   * a plain Uint8Array, also when the input is a Node Buffer, whose `slice`
   * would be a view.
   */
  bytes(len: number): Uint8Array {
    const out = new Uint8Array(len);
    out.set(this.buf.subarray(this.pos, this.pos + len));
    this.pos += len;
    return out;
  }
}

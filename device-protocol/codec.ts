/**
 * The device-protocol codec: pure functions from Frame to bytes and back,
 * driven by the per-kind schemas in ./frames/. Wire format: SPEC.md §2.
 *
 * decodeFrame and decodeBatch never throw: whatever the bytes, they return
 * either a frame or a ProtocolError with a registry code. Every declared
 * length is checked against the limits and the bytes left before anything is
 * allocated, so a hostile frame cannot make the decoder allocate more than
 * the frame's own size (plus small per-item object overhead, bounded by the limits).
 */

import { ByteReader, ByteWriter, fail, varintSize, writeVarintAt } from './bytes.ts';
import { GatewayError, ProtocolError } from './errors.ts';
import { FRAME_SPECS, type FieldType, type MessageSpec, WIRE_TYPE_OF, WireType } from './frames/index.ts';
import { DEFAULT_LIMITS, type DecodeLimits, type Frame, PROTOCOL_VERSION, type Value } from './messages.ts';
import { readValue, writeValue } from './value.ts';

export type DecodeResult = { ok: true; frame: Frame } | { ok: false; error: ProtocolError };
export type BatchResult = { ok: true; frames: Uint8Array[] } | { ok: false; error: ProtocolError };
export type ValueResult = { ok: true; value: Value } | { ok: false; error: ProtocolError };

// ---------------------------------------------------------------------------
// Schemas compiled into lookup tables once, at module load.

interface CompiledField {
  no: number;
  name: string;
  /** Dotted path for error messages, e.g. `caps.imageFormats`. */
  path: string;
  type: FieldType;
  wire: number;
  /** (no << 3) | wire, the field key on the wire. */
  key: number;
  /** 1 << (no - 1): the field's bit in the seen/required masks. */
  bit: number;
  required: boolean;
  message?: CompiledMessage;
}

interface CompiledMessage {
  name: string;
  fields: CompiledField[];
  byNumber: (CompiledField | undefined)[];
  requiredMask: number;
}

function compile(spec: MessageSpec, prefix: string): CompiledMessage {
  const out: CompiledMessage = { name: spec.name, fields: [], byNumber: [], requiredMask: 0 };
  for (const f of spec.fields) {
    if (!Number.isInteger(f.no) || f.no < 1 || f.no > 31) {
      throw new Error(`${spec.name}.${f.name}: field numbers are 1..31`);
    }
    if (out.byNumber[f.no] !== undefined) throw new Error(`${spec.name}: field number ${f.no} used twice`);
    const path = prefix + f.name;
    const wire = WIRE_TYPE_OF[f.type];
    const cf: CompiledField = {
      no: f.no,
      name: f.name,
      path,
      type: f.type,
      wire,
      key: (f.no << 3) | wire,
      bit: 1 << (f.no - 1),
      required: f.required,
    };
    if (f.type === 'message') {
      if (f.message === undefined) throw new Error(`${spec.name}.${f.name}: message schema missing`);
      cf.message = compile(f.message, `${path}.`);
    }
    out.fields.push(cf);
    out.byNumber[f.no] = cf;
    if (f.required) out.requiredMask |= cf.bit;
  }
  return out;
}

const compiledByKind: (CompiledMessage | undefined)[] = [];
for (const spec of FRAME_SPECS) compiledByKind[spec.kind] = compile(spec, '');

/**
 * Fills in defaults. Written out field by field so that an explicit
 * `undefined` in the partial cannot switch a limit off.
 */
export function resolveLimits(limits?: Partial<DecodeLimits>): DecodeLimits {
  if (limits === undefined || limits === DEFAULT_LIMITS) return DEFAULT_LIMITS;
  return {
    maxFrameBytes: limits.maxFrameBytes ?? DEFAULT_LIMITS.maxFrameBytes,
    maxStringBytes: limits.maxStringBytes ?? DEFAULT_LIMITS.maxStringBytes,
    maxBytesLength: limits.maxBytesLength ?? DEFAULT_LIMITS.maxBytesLength,
    maxListLength: limits.maxListLength ?? DEFAULT_LIMITS.maxListLength,
    maxMapEntries: limits.maxMapEntries ?? DEFAULT_LIMITS.maxMapEntries,
    maxDepth: limits.maxDepth ?? DEFAULT_LIMITS.maxDepth,
    maxBatchFrames: limits.maxBatchFrames ?? DEFAULT_LIMITS.maxBatchFrames,
  };
}

function asProtocolError(err: unknown): ProtocolError {
  if (err instanceof ProtocolError) return err;
  if (err instanceof GatewayError) {
    return new ProtocolError(err.code, err.message, {
      cause: err,
      ...(err.field ? { field: err.field } : {}),
    });
  }
  // Not expected (the reader checks every bound), but the contract is "never throws".
  return new ProtocolError('protocol.bad_frame', 'the frame could not be decoded', { cause: err });
}

// ---------------------------------------------------------------------------
// Encoding

/**
 * One writer reused for every frame: encoding is synchronous, so it is never
 * shared by two frames at once (a getter on a body that re-enters encodeFrame
 * gets a writer of its own).
 */
let scratch = new ByteWriter(4096);
let scratchBusy = false;
/** A writer grown past this by a big frame is dropped afterwards, not kept for ever. */
const SCRATCH_KEEP_BYTES = 256 * 1024;

/**
 * Encodes one frame. Throws GatewayError: protocol.unknown_kind for an
 * unknown kind, protocol.bad_frame for a missing required field or a field
 * of the wrong type (negative or fractional integers, non-Value bodies),
 * protocol.limit / protocol.frame_too_large when the receiver, using
 * `limits` (default DEFAULT_LIMITS), would refuse the frame.
 */
export function encodeFrame(frame: Frame, limits?: Partial<DecodeLimits>): Uint8Array {
  const l = resolveLimits(limits);
  if (typeof frame !== 'object' || frame === null) fail('protocol.bad_frame', 'a frame must be an object');
  const msg = typeof frame.kind === 'number' ? compiledByKind[frame.kind] : undefined;
  if (msg === undefined) fail('protocol.unknown_kind', `unknown frame kind ${String(frame.kind)}`, 'kind');
  const reentrant = scratchBusy;
  const w = reentrant ? new ByteWriter(256) : scratch;
  scratchBusy = true;
  try {
    w.pos = 0;
    w.byte(PROTOCOL_VERSION);
    w.varint(frame.kind);
    writeFields(w, msg, frame as unknown as Record<string, unknown>, l);
    if (w.pos > l.maxFrameBytes) {
      fail('protocol.frame_too_large', `frame of ${w.pos} bytes exceeds the limit of ${l.maxFrameBytes}`);
    }
    return w.finish();
  } finally {
    if (!reentrant) {
      scratchBusy = false;
      if (scratch.buf.length > SCRATCH_KEEP_BYTES) scratch = new ByteWriter(4096);
    }
  }
}

function badField(f: CompiledField, expected: string): never {
  return fail('protocol.bad_frame', `field ${f.path} must be ${expected}`, f.path);
}

function writeFields(
  w: ByteWriter,
  msg: CompiledMessage,
  obj: Record<string, unknown>,
  limits: DecodeLimits,
): void {
  const fields = msg.fields;
  for (let i = 0; i < fields.length; i++) {
    const f = fields[i]!;
    const v = obj[f.name];
    if (v === undefined) {
      if (f.required) fail('protocol.bad_frame', `missing required field ${f.path}`, f.path);
      continue;
    }
    switch (f.type) {
      case 'uint':
        if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) badField(f, 'an integer 0..2^53-1');
        w.varint(f.key);
        w.varint(v);
        break;
      case 'bool':
        if (typeof v !== 'boolean') badField(f, 'a boolean');
        w.varint(f.key);
        w.byte(v ? 1 : 0);
        break;
      case 'sint':
        if (typeof v !== 'number' || !Number.isInteger(v) || Math.abs(v) >= 2 ** 52) {
          badField(f, 'an integer -(2^52-1)..2^52-1');
        }
        w.varint(f.key);
        w.varint(v >= 0 ? v * 2 : -v * 2 - 1);
        break;
      case 'string': {
        if (typeof v !== 'string') badField(f, 'a string');
        w.varint(f.key);
        const len = w.string(v);
        if (len > limits.maxStringBytes) {
          fail(
            'protocol.limit',
            `string of ${len} bytes exceeds the limit of ${limits.maxStringBytes}`,
            f.path,
          );
        }
        break;
      }
      case 'strings': {
        if (!Array.isArray(v)) badField(f, 'a list of strings');
        if (v.length > limits.maxListLength) {
          fail(
            'protocol.limit',
            `list of ${v.length} items exceeds the limit of ${limits.maxListLength}`,
            f.path,
          );
        }
        w.varint(f.key);
        const start = w.pos;
        for (let j = 0; j < v.length; j++) {
          const s = v[j];
          if (typeof s !== 'string') badField(f, 'a list of strings');
          const len = w.string(s);
          if (len > limits.maxStringBytes) {
            fail(
              'protocol.limit',
              `string of ${len} bytes exceeds the limit of ${limits.maxStringBytes}`,
              f.path,
            );
          }
        }
        w.insertVarint(start, w.pos - start);
        break;
      }
      case 'value': {
        w.varint(f.key);
        const start = w.pos;
        writeValue(w, v, limits, 0, f.path);
        w.insertVarint(start, w.pos - start);
        break;
      }
      case 'message': {
        if (typeof v !== 'object' || v === null || Array.isArray(v)) badField(f, 'an object');
        w.varint(f.key);
        const start = w.pos;
        writeFields(w, f.message!, v as Record<string, unknown>, limits);
        w.insertVarint(start, w.pos - start);
        break;
      }
    }
  }
}

// ---------------------------------------------------------------------------
// Decoding

/**
 * Decodes one frame. Never throws. Order of checks: size (before reading a
 * byte), version byte, kind, then fields.
 */
export function decodeFrame(bytes: Uint8Array, limits?: Partial<DecodeLimits>): DecodeResult {
  try {
    const l = resolveLimits(limits);
    if (!(bytes instanceof Uint8Array)) fail('protocol.bad_frame', 'a frame must be bytes');
    if (bytes.length > l.maxFrameBytes) {
      fail(
        'protocol.frame_too_large',
        `frame of ${bytes.length} bytes exceeds the limit of ${l.maxFrameBytes}`,
      );
    }
    if (bytes.length === 0) fail('protocol.bad_frame', 'empty frame');
    if (bytes[0] !== PROTOCOL_VERSION) {
      fail(
        'protocol.unsupported_version',
        `protocol version ${bytes[0]} is not supported (this side speaks 1)`,
      );
    }
    const r = new ByteReader(bytes, 1);
    const kind = r.varint('kind');
    const msg = compiledByKind[kind];
    if (msg === undefined) fail('protocol.unknown_kind', `unknown frame kind ${kind}`, 'kind');
    const frame: Record<string, unknown> = { kind };
    readFields(r, msg, l, frame);
    return { ok: true, frame: frame as unknown as Frame };
  } catch (err) {
    return { ok: false, error: asProtocolError(err) };
  }
}

/** Reads a length prefix of a wire-type-2 field and returns where the field ends. */
function fieldEnd(r: ByteReader, path: string): number {
  const len = r.varint(path);
  if (len > r.remaining) fail('protocol.bad_frame', `field ${path} runs past the end of the frame`, path);
  return r.pos + len;
}

function skipField(r: ByteReader, wire: number, no: number): void {
  const path = `#${no}`;
  switch (wire) {
    case WireType.Varint:
    case WireType.ZigZag:
      r.varint(path);
      return;
    case WireType.Length:
      r.pos = fieldEnd(r, path);
      return;
    case WireType.Fixed64:
      if (r.remaining < 8) fail('protocol.bad_frame', 'frame truncated in a fixed64 field', path);
      r.pos += 8;
      return;
  }
  fail('protocol.bad_frame', `unknown wire type ${wire} (field ${no})`, path);
}

function readFields(
  r: ByteReader,
  msg: CompiledMessage,
  limits: DecodeLimits,
  out: Record<string, unknown>,
): void {
  let seen = 0;
  const byNumber = msg.byNumber;
  while (r.pos < r.end) {
    const key = r.varint('field key');
    // Keys can exceed 2^31 in a hostile frame: arithmetic, not bit operators.
    const wire = key % 8;
    const no = (key - wire) / 8;
    if (no === 0) fail('protocol.bad_frame', 'field number 0');
    const f = no < byNumber.length ? byNumber[no] : undefined;
    if (f === undefined) {
      // Forward compatibility: a newer peer may send fields this side does not know.
      skipField(r, wire, no);
      continue;
    }
    if (wire !== f.wire) {
      fail('protocol.bad_frame', `field ${f.path} has wire type ${wire}, expected ${f.wire}`, f.path);
    }
    if ((seen & f.bit) !== 0) fail('protocol.bad_frame', `field ${f.path} appears twice`, f.path);
    seen |= f.bit;
    switch (f.type) {
      case 'uint':
        out[f.name] = r.varint(f.path);
        break;
      case 'bool': {
        const b = r.varint(f.path);
        if (b > 1) fail('protocol.bad_frame', `field ${f.path} must be 0 or 1`, f.path);
        out[f.name] = b === 1;
        break;
      }
      case 'sint': {
        const z = r.varint(f.path);
        out[f.name] = z % 2 === 0 ? z / 2 : -(z + 1) / 2;
        break;
      }
      case 'string':
        out[f.name] = r.utf8(r.length(limits.maxStringBytes, 'string', f.path), f.path);
        break;
      case 'strings': {
        const end = fieldEnd(r, f.path);
        const outer = r.end;
        r.end = end;
        const list: string[] = [];
        while (r.pos < end) {
          if (list.length >= limits.maxListLength) {
            fail('protocol.limit', `list exceeds the limit of ${limits.maxListLength} items`, f.path);
          }
          list.push(r.utf8(r.length(limits.maxStringBytes, 'string', f.path), f.path));
        }
        r.end = outer;
        out[f.name] = list;
        break;
      }
      case 'value': {
        const end = fieldEnd(r, f.path);
        const outer = r.end;
        r.end = end;
        out[f.name] = readValue(r, limits, 0, f.path);
        if (r.pos !== end) fail('protocol.bad_frame', `trailing bytes after the value of ${f.path}`, f.path);
        r.end = outer;
        break;
      }
      case 'message': {
        const end = fieldEnd(r, f.path);
        const outer = r.end;
        r.end = end;
        const nested: Record<string, unknown> = {};
        readFields(r, f.message!, limits, nested);
        r.end = outer;
        out[f.name] = nested;
        break;
      }
    }
  }
  if ((seen & msg.requiredMask) !== msg.requiredMask) {
    for (const f of msg.fields) {
      if (f.required && (seen & f.bit) === 0) {
        fail('protocol.bad_frame', `${msg.name}: missing required field ${f.path}`, f.path);
      }
    }
  }
}

// ---------------------------------------------------------------------------
// Batches (HTTP long-poll bodies, SPEC.md §4.2)

/** Concatenates frames, each preceded by its length as an unsigned LEB128 varint. */
export function encodeBatch(frames: Uint8Array[]): Uint8Array {
  let total = 0;
  for (const f of frames) total += varintSize(f.length) + f.length;
  const out = new Uint8Array(total);
  let pos = 0;
  for (const f of frames) {
    pos = writeVarintAt(out, pos, f.length);
    out.set(f, pos);
    pos += f.length;
  }
  return out;
}

/**
 * Splits a batch into frames (views into `bytes`, not copies; decode each
 * with decodeFrame). Never throws. More than maxBatchFrames frames →
 * protocol.limit; a frame longer than maxFrameBytes → protocol.frame_too_large;
 * a zero-length frame or a length past the end → protocol.bad_frame.
 */
export function decodeBatch(bytes: Uint8Array, limits?: Partial<DecodeLimits>): BatchResult {
  try {
    const l = resolveLimits(limits);
    if (!(bytes instanceof Uint8Array)) fail('protocol.bad_frame', 'a batch must be bytes');
    const r = new ByteReader(bytes);
    const frames: Uint8Array[] = [];
    while (r.pos < r.end) {
      if (frames.length >= l.maxBatchFrames) {
        fail('protocol.limit', `batch holds more than ${l.maxBatchFrames} frames`);
      }
      const len = r.varint('batch');
      if (len > l.maxFrameBytes) {
        fail('protocol.frame_too_large', `frame of ${len} bytes exceeds the limit of ${l.maxFrameBytes}`);
      }
      if (len === 0) fail('protocol.bad_frame', 'empty frame in batch');
      if (len > r.remaining) fail('protocol.bad_frame', 'batch truncated');
      frames.push(bytes.subarray(r.pos, r.pos + len));
      r.pos += len;
    }
    return { ok: true, frames };
  } catch (err) {
    return { ok: false, error: asProtocolError(err) };
  }
}

// ---------------------------------------------------------------------------
// Bare Values (for tests, tools and anything that wants the body encoding alone)

/** Encodes one Value by itself (no frame header). Throws like encodeFrame. */
export function encodeValue(value: Value, limits?: Partial<DecodeLimits>): Uint8Array {
  const w = new ByteWriter(64);
  writeValue(w, value, resolveLimits(limits), 0, 'value');
  return w.finish();
}

/** Decodes one Value that fills `bytes` exactly. Never throws. */
export function decodeValue(bytes: Uint8Array, limits?: Partial<DecodeLimits>): ValueResult {
  try {
    const l = resolveLimits(limits);
    if (bytes.length > l.maxFrameBytes) {
      fail(
        'protocol.frame_too_large',
        `value of ${bytes.length} bytes exceeds the limit of ${l.maxFrameBytes}`,
      );
    }
    const r = new ByteReader(bytes);
    const value = readValue(r, l, 0, 'value');
    if (r.pos !== r.end) fail('protocol.bad_frame', 'trailing bytes after the value', 'value');
    return { ok: true, value };
  } catch (err) {
    return { ok: false, error: asProtocolError(err) };
  }
}

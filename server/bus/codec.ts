/**
 * The one wire encoding of bus payloads, shared by every bus implementation
 * (in-process, NATS, IPC) so that a role cannot tell which one it runs on.
 *
 * Payloads are MessagePack (msgpackr, no records: records would need shared
 * structure state between sender and receiver, which separate processes do
 * not have). A request's answer travels as a reply envelope:
 * `{ok: true, data}` or `{ok: false, code, message, …}`, so that a handler's
 * GatewayError reaches the requester with the same code and message.
 *
 * Large binaries (a transcoder source is 3–25 MB) are what the bus mostly
 * moves by volume, so two rules keep them to one copy in each direction:
 * - A message carrying a binary of LARGE_BINARY_BYTES or more is packed into
 *   a buffer of its own, sized for it, instead of into msgpackr's shared pack
 *   buffer (which would grow to 4× the message and then hold every small
 *   message packed after it).
 * - A receiver that owns the message bytes (`decodePayload(bytes, 'owned')`:
 *   nobody else decodes, reads or writes them afterwards) gets the binaries of
 *   a large message as views of those bytes instead of copies. Small messages
 *   are always copied out, so that a kept small binary never pins a shared
 *   pack or socket buffer. Isolation holds either way: what the sender packed
 *   is already a copy, and bytes decoded by more than one subscriber are
 *   decoded 'shared' (copies).
 *
 * And one rule takes the in-process bus to no copy at all: a sender that hands
 * a binary over (`RequestOptions.transfer`, like postMessage's transfer list)
 * gets it moved instead of packed (encodeMoving): the message is packed with a
 * slot in its place, the binary's ArrayBuffer is transferred (the sender's view
 * is detached, so memory is still never shared) and travels beside the message
 * bytes, and the receiver's decode puts it back into the slot. Everything else
 * in the payload is packed and decoded as always, so the receiver sees what a
 * NATS receiver would see. The NATS and IPC buses ignore the list.
 */
import { addExtension, Packr, Unpackr } from 'msgpackr';
import { ERROR_CODES, GatewayError, isErrorCode } from '../../device-protocol/errors.ts';

// copyBuffers: decoded Uint8Arrays are copies, never views of the message
// bytes, so two subscribers decoding the same message share no memory.
const packr = new Packr({ useRecords: false, copyBuffers: true });
// For owned large messages only (see above): binaries are views of the message.
const viewUnpackr = new Unpackr({ useRecords: false, copyBuffers: false });

/** A binary this large gets a message buffer of its own; a message this large may be decoded into views. */
export const LARGE_BINARY_BYTES = 64 * 1024;
/** Room for the rest of a large message (keys, a spec, metadata); more only costs msgpackr one regrowth. */
const LARGE_MESSAGE_SLACK = 16 * 1024;
/** The fresh shared pack buffer after a large message (msgpackr's own initial size). */
const SMALL_PACK_BUFFER = 8192;
/** How far largeBinaryBytes looks: a reply envelope holds its binaries at depth 2 ({ok, data: {bytes}}). */
const SCAN_DEPTH = 3;
const SCAN_MAX_ENTRIES = 32;

/**
 * Bytes of the large binaries near the top of a payload (plain objects and
 * arrays, a bounded look): enough to size the buffer of a transcoder request
 * or reply, cheap for the many small messages that have none.
 */
function largeBinaryBytes(value: unknown, depth: number): number {
  if (value === null || typeof value !== 'object') return 0;
  if (value instanceof Uint8Array) return value.byteLength >= LARGE_BINARY_BYTES ? value.byteLength : 0;
  if (depth === 0) return 0;
  let total = 0;
  if (Array.isArray(value)) {
    const n = Math.min(value.length, SCAN_MAX_ENTRIES);
    for (let i = 0; i < n; i++) total += largeBinaryBytes(value[i], depth - 1);
    return total;
  }
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return 0;
  let seen = 0;
  for (const key in value) {
    if (++seen > SCAN_MAX_ENTRIES) break;
    total += largeBinaryBytes((value as Record<string, unknown>)[key], depth - 1);
  }
  return total;
}

/** Stands in for a moved binary inside the packed message: its index among the moved ones. */
class MovedSlot {
  constructor(readonly index: number) {}
}

/** The moved binaries of the message being decoded (decoding is synchronous: set around one unpack). */
let decodingMoved: { binaries: readonly Uint8Array[]; copy: boolean } | undefined;

/** msgpackr extension type of a slot; unknown to every peer, and a slot without its binary is a bad message. */
const MOVED_SLOT_EXT = 0x4d;
addExtension({
  Class: MovedSlot,
  type: MOVED_SLOT_EXT,
  write: (slot: MovedSlot) => slot.index,
  read: (index: unknown) => {
    const binary =
      decodingMoved !== undefined && typeof index === 'number' ? decodingMoved.binaries[index] : undefined;
    if (binary === undefined) throw new Error('A moved binary is missing from the message.');
    return decodingMoved!.copy ? binary.slice() : binary;
  },
});

/** A message whose moved binaries travel beside its bytes (in-process only). */
export interface MovedMessage {
  bytes: Uint8Array;
  /** The binaries whose slots are in `bytes`, by index; each owns its whole ArrayBuffer. */
  moved: Uint8Array[];
}

/**
 * Whether a binary can be moved: it is the whole of an ordinary ArrayBuffer
 * (a view of part of one, e.g. a pooled Buffer, would take its neighbours along).
 */
function movable(view: Uint8Array): boolean {
  return (
    view.byteOffset === 0 &&
    view.buffer instanceof ArrayBuffer &&
    view.byteLength === view.buffer.byteLength &&
    view.byteLength > 0
  );
}

/** Moves the ArrayBuffer of `view` (detaching the sender's); undefined when it cannot be transferred. */
function transferred(view: Uint8Array): Uint8Array | undefined {
  try {
    return new Uint8Array(
      structuredClone(view.buffer as ArrayBuffer, { transfer: [view.buffer as ArrayBuffer] }),
    );
  } catch {
    // Marked untransferable (Node's Buffer pool) or otherwise refused: it is packed instead.
    return undefined;
  }
}

/**
 * The payload with each binary whose whole ArrayBuffer is one of `candidates` replaced by a slot (containers
 * on the way are shallow copies: the sender's objects are not touched),
 * looking as far as largeBinaryBytes does. `found` collects the binaries in
 * slot order.
 */
function withSlots(
  value: unknown,
  candidates: ReadonlySet<ArrayBufferLike>,
  found: Uint8Array[],
  depth: number,
): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (value instanceof Uint8Array) {
    if (!candidates.has(value.buffer) || !movable(value)) return value;
    let index = found.findIndex((f) => f.buffer === value.buffer);
    if (index === -1) index = found.push(value) - 1;
    return new MovedSlot(index);
  }
  if (depth === 0) return value;
  if (Array.isArray(value)) {
    if (value.length > SCAN_MAX_ENTRIES) return value;
    let copy: unknown[] | undefined;
    for (let i = 0; i < value.length; i++) {
      const v = withSlots(value[i], candidates, found, depth - 1);
      if (v !== value[i]) (copy ??= value.slice())[i] = v;
    }
    return copy ?? value;
  }
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return value;
  const keys = Object.keys(value);
  if (keys.length > SCAN_MAX_ENTRIES) return value;
  let copy: Record<string, unknown> | undefined;
  for (const key of keys) {
    const v0 = (value as Record<string, unknown>)[key];
    const v = withSlots(v0, candidates, found, depth - 1);
    if (v !== v0) (copy ??= { ...(value as Record<string, unknown>) })[key] = v;
  }
  return copy ?? value;
}

/**
 * Encodes a payload whose binaries in `transfer` are handed over (the sender
 * does not use them afterwards): those that are the whole of a transferable
 * ArrayBuffer and sit where a transcoder request keeps its source (within the
 * bounded look of largeBinaryBytes) are moved, detaching the sender's view;
 * the rest are packed (copied) as by encodePayload. Throws like encodePayload,
 * before anything is moved.
 */
export function encodeMoving(data: unknown, transfer: readonly Uint8Array[]): MovedMessage {
  const candidates = new Set(
    transfer.filter((b) => b instanceof Uint8Array && movable(b)).map((b) => b.buffer),
  );
  if (candidates.size === 0) return { bytes: encodePayload(data), moved: [] };
  const found: Uint8Array[] = [];
  const slotted = withSlots(data, candidates, found, SCAN_DEPTH);
  if (found.length === 0) return { bytes: encodePayload(data), moved: [] };
  // Packed before anything is moved: a payload that cannot be encoded leaves the sender's bytes alone.
  const bytes = encodePayload(slotted);
  // One that cannot be moved after all (a non-detachable buffer) travels as a copy; its sender keeps it.
  const moved = found.map((binary) => transferred(binary) ?? binary.slice());
  return { bytes, moved };
}

function decodeWithMoved(bytes: Uint8Array, moved: readonly Uint8Array[], copy: boolean): unknown {
  const outer = decodingMoved;
  decodingMoved = { binaries: moved, copy };
  try {
    return packr.unpack(bytes);
  } finally {
    decodingMoved = outer;
  }
}

/**
 * Decodes a message whose binaries were moved beside it. 'owned': the
 * receiver gets the moved binaries themselves; 'shared' (more than one
 * subscriber): each gets copies. Throws GatewayError('bus.bad_message').
 */
export function decodeMoved(message: MovedMessage, ownership: MessageOwnership = 'shared'): unknown {
  if (message.moved.length === 0) return decodePayload(message.bytes, ownership);
  try {
    return decodeWithMoved(plain(message.bytes), message.moved, ownership === 'shared');
  } catch (err) {
    throw new GatewayError('bus.bad_message', 'The bus message could not be decoded.', { cause: err });
  }
}

/**
 * The same message as self-contained bytes (the moved binaries packed back
 * in), for whoever reads bytes: a raw subscriber, the IPC broker.
 */
export function inlineMoved(message: MovedMessage): Uint8Array {
  if (message.moved.length === 0) return message.bytes;
  return encodePayload(decodeMoved(message, 'owned'));
}

function plain(bytes: Uint8Array): Uint8Array {
  return bytes.constructor === Uint8Array
    ? bytes
    : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

export type ReplyEnvelope =
  | { ok: true; data: unknown }
  | {
      ok: false;
      code: string;
      message: string;
      field?: string;
      retryable?: boolean;
      retryAfterMs?: number;
    };

/** Encodes any bus payload to bytes. Throws GatewayError('bus.bad_message') for what cannot be encoded. */
export function encodePayload(data: unknown): Uint8Array {
  try {
    const large = largeBinaryBytes(data, SCAN_DEPTH);
    if (large === 0) return packr.pack(data);
    // Its own buffer: the message is not a slice of a buffer shared with others, and a
    // receiver's views of it hold exactly this message. Afterwards a fresh small buffer,
    // so that later small messages do not land in (and pin) this one.
    packr.useBuffer(Buffer.allocUnsafeSlow(large + LARGE_MESSAGE_SLACK));
    try {
      return packr.pack(data);
    } finally {
      packr.useBuffer(Buffer.allocUnsafeSlow(SMALL_PACK_BUFFER));
    }
  } catch (err) {
    throw new GatewayError('bus.bad_message', 'The bus payload could not be encoded.', { cause: err });
  }
}

/**
 * Who else may touch the bytes handed to decodePayload: 'shared' (the
 * default: binaries are copied out), or 'owned' (the caller hands them over;
 * nobody else decodes, reads or writes them afterwards, so the binaries of a
 * large message may stay views of them).
 */
export type MessageOwnership = 'shared' | 'owned';

/** Decodes bytes from the bus. Throws GatewayError('bus.bad_message') on bad bytes. */
export function decodePayload(bytes: Uint8Array, ownership: MessageOwnership = 'shared'): unknown {
  if (!(bytes instanceof Uint8Array) || bytes.byteLength === 0) {
    throw new GatewayError('bus.bad_message', 'The bus message is empty or not bytes.');
  }
  try {
    // A plain Uint8Array view makes msgpackr hand out plain Uint8Arrays
    // (not Buffers) for binary fields, in Node as in any other runtime.
    const view = plain(bytes);
    const unpackr = ownership === 'owned' && view.byteLength >= LARGE_BINARY_BYTES ? viewUnpackr : packr;
    return unpackr.unpack(view);
  } catch (err) {
    throw new GatewayError('bus.bad_message', 'The bus message could not be decoded.', { cause: err });
  }
}

/** The reply envelope of a successful request. */
export function encodeReply(data: unknown): Uint8Array {
  return encodePayload({ ok: true, data });
}

/**
 * The reply envelope of a failed request. A GatewayError keeps its code and
 * message; anything else becomes 'internal' with the generic message, so
 * nothing internal (paths, secrets in messages) crosses the bus.
 */
export function encodeErrorReply(err: unknown): Uint8Array {
  const envelope: ReplyEnvelope =
    err instanceof GatewayError
      ? {
          ok: false,
          code: err.code,
          message: err.message,
          retryable: err.retryable,
          ...(err.field === undefined ? {} : { field: err.field }),
          ...(err.retryAfterMs === undefined ? {} : { retryAfterMs: err.retryAfterMs }),
        }
      : { ok: false, code: 'internal', message: ERROR_CODES.internal };
  return encodePayload(envelope);
}

/** Encodes the answer of a handler, or its failure; never throws. */
export function encodeHandlerResult(
  result: { ok: true; data: unknown } | { ok: false; error: unknown },
): Uint8Array {
  if (!result.ok) return encodeErrorReply(result.error);
  try {
    return encodeReply(result.data);
  } catch (err) {
    return encodeErrorReply(err);
  }
}

/**
 * Decodes a reply envelope: returns the data of a success, throws the
 * GatewayError of a failure, or GatewayError('bus.bad_message') when the bytes
 * are not an envelope.
 */
export function decodeReply(bytes: Uint8Array, ownership: MessageOwnership = 'shared'): unknown {
  const envelope = decodePayload(bytes, ownership) as ReplyEnvelope | null;
  if (envelope === null || typeof envelope !== 'object' || typeof envelope.ok !== 'boolean') {
    throw new GatewayError('bus.bad_message', 'The bus reply is not an envelope.');
  }
  if (envelope.ok) return envelope.data;
  const code = isErrorCode(envelope.code) ? envelope.code : 'internal';
  const message = typeof envelope.message === 'string' ? envelope.message : ERROR_CODES[code];
  throw new GatewayError(code, message, {
    retryable: envelope.retryable === true,
    ...(typeof envelope.field === 'string' ? { field: envelope.field } : {}),
    ...(typeof envelope.retryAfterMs === 'number' ? { retryAfterMs: envelope.retryAfterMs } : {}),
  });
}

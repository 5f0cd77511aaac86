/**
 * The one wire encoding of bus payloads, shared by every bus implementation
 * (in-process, NATS, IPC) so that a role cannot tell which one it runs on.
 *
 * Payloads are MessagePack (msgpackr, no records: records would need shared
 * structure state between sender and receiver, which separate processes do
 * not have). A request's answer travels as a reply envelope:
 * `{ok: true, data}` or `{ok: false, code, message, …}`, so that a handler's
 * GatewayError reaches the requester with the same code and message.
 */
import { Packr } from 'msgpackr';
import { ERROR_CODES, GatewayError, isErrorCode } from '../../device-protocol/errors.ts';

// copyBuffers: decoded Uint8Arrays are copies, never views of the message
// bytes, so two subscribers decoding the same message share no memory.
const packr = new Packr({ useRecords: false, copyBuffers: true });

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
    return packr.pack(data);
  } catch (err) {
    throw new GatewayError('bus.bad_message', 'The bus payload could not be encoded.', { cause: err });
  }
}

/** Decodes bytes from the bus. Throws GatewayError('bus.bad_message') on bad bytes. */
export function decodePayload(bytes: Uint8Array): unknown {
  if (!(bytes instanceof Uint8Array) || bytes.byteLength === 0) {
    throw new GatewayError('bus.bad_message', 'The bus message is empty or not bytes.');
  }
  try {
    // A plain Uint8Array view makes msgpackr hand out plain Uint8Arrays
    // (not Buffers) for binary fields, in Node as in any other runtime.
    const view =
      bytes.constructor === Uint8Array
        ? bytes
        : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    return packr.unpack(view);
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
export function decodeReply(bytes: Uint8Array): unknown {
  const envelope = decodePayload(bytes) as ReplyEnvelope | null;
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

/** The few gateway-originated frames that are not sequenced, encoded once per use. */
import { encodeFrame } from '../../device-protocol/codec.ts';
import { Kind } from '../../device-protocol/messages.ts';

export function errorFrame(code: string, message: string, retryAfterMs?: number): Uint8Array {
  return encodeFrame({
    kind: Kind.Error,
    code,
    message,
    fatal: true,
    ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
  });
}

export function byeFrame(
  code: string,
  message: string,
  resumable: boolean,
  reconnectAfterMs?: number,
): Uint8Array {
  return encodeFrame({
    kind: Kind.Bye,
    code,
    message,
    resumable,
    ...(reconnectAfterMs === undefined ? {} : { reconnectAfterMs }),
  });
}

export const DRAINING_MESSAGE = 'This gateway node is draining; reconnect.';

/** reconnectAfterMs of a drain Bye: 1–5 s, spread so that a node's devices do not all come back at once. */
export function drainJitterMs(): number {
  return 1000 + Math.floor(Math.random() * 4000);
}

/**
 * The last frame of a long-poll request refused before authentication (too
 * many unauthenticated connections from its address, or in all): a device
 * backs off as from a rate limit.
 */
export function preAuthRefusalFrame(status: 429 | 503, retryAfterSec: number): Uint8Array {
  return errorFrame(
    'session.rate_limited',
    status === 429
      ? 'Too many connections from this address are waiting to authenticate.'
      : 'Too many connections are waiting to authenticate.',
    retryAfterSec * 1000,
  );
}

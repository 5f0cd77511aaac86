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

/** Resumes a second a draining edge's devices are spread to, so that the edge taking them over is not swamped. */
const DRAIN_RESUMES_PER_SECOND = 1000;

/**
 * reconnectAfterMs of a drain Bye: 100 ms plus a random share of a spread
 * that grows with the sessions the edge holds (one second per 1,000), from
 * 0.25 s to 5 s. A small edge's devices come back at once; a large one's
 * do not all come back at the same moment.
 */
export function drainJitterMs(sessions: number): number {
  const spread = Math.min(5000, Math.max(250, Math.ceil((sessions * 1000) / DRAIN_RESUMES_PER_SECOND)));
  return 100 + Math.floor(Math.random() * spread);
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

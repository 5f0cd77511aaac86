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

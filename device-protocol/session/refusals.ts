/**
 * How the session reads the gateway's Error and Bye frames: the GatewayError
 * the application sees, and what becomes of the carrier that got a fatal one
 * (the session ends, or reconnects: when, where, and as which session).
 */

import { type ErrorCode, GatewayError, isRetryableCode } from '../errors.ts';
import { type Bye, type ErrorFrame, Kind } from '../messages.ts';

/** Refusals that no retry can fix: the application must act (provision, enable, fix the secret). */
const FATAL_AUTH_CODES: ReadonlySet<string> = new Set<string>([
  'auth.unknown_device',
  'auth.bad_secret',
  'auth.disabled',
  'auth.bad_token',
  'auth.token_expired',
]);

/**
 * Codes whose operation may be retried: the registry's, plus the bus codes
 * older gateways sent to devices (a Resume that hit a busy holder answered
 * bus.timeout before session.busy existed).
 */
function retryableCode(code: string): boolean {
  return isRetryableCode(code) || code === 'bus.timeout' || code === 'bus.no_responders';
}

/** Turns an Error or Bye frame into the GatewayError the application sees. */
export function errorFromFrame(frame: ErrorFrame | Bye): GatewayError {
  const retryAfterMs = frame.kind === Kind.Error ? frame.retryAfterMs : frame.reconnectAfterMs;
  // The gateway may be newer than this SDK and send a code we do not list:
  // keep it as is rather than hiding it behind 'internal'.
  const code = frame.code as ErrorCode;
  const options: { retryable: boolean; retryAfterMs?: number } = {
    retryable: retryableCode(frame.code) || retryAfterMs !== undefined,
  };
  if (retryAfterMs !== undefined) options.retryAfterMs = retryAfterMs;
  return new GatewayError(code, frame.message || undefined, options);
}

/** What becomes of the carrier that received a fatal Error or a Bye. */
export type CarrierVerdict =
  /** A refusal no retry fixes: the session ends. */
  | { do: 'fail'; error: GatewayError; emitError: boolean }
  /** Our own switch moved the session: the old carrier goes quietly. */
  | { do: 'let-go' }
  /** Lose the carrier and reconnect (after `delayMs` when set, else the backoff). */
  | {
      do: 'reconnect';
      reason: string;
      code: string;
      delayMs?: number;
      /** Told to the application first. */
      emitError?: GatewayError;
      /** The session cannot be resumed: the next carrier says Hello. */
      forgetSession?: boolean;
      /** The next attempt goes to the next URL. */
      moveOn?: boolean;
      /** A planned goodbye: the gateway is back soon (CarrierRoute.expectBackSoon). */
      backSoon?: boolean;
    };

/**
 * A fatal Error frame, `err` read from it. `busyTooLong`: it answered a
 * Resume session.busy, and Resumes of this session have been busy for the
 * limit or longer.
 */
export function errorVerdict(frame: ErrorFrame, err: GatewayError, busyTooLong: boolean): CarrierVerdict {
  if (FATAL_AUTH_CODES.has(frame.code)) return { do: 'fail', error: err, emitError: true };
  if (frame.code === 'session.busy' && busyTooLong) {
    // A Resume the holder does not answer (frozen, or cut off from the bus): after a while a
    // new session serves the device better than waiting; what the old one held is lost to it.
    const reason = `${err.message} (given up)`;
    return { do: 'reconnect', reason, code: frame.code, delayMs: 0, emitError: err, forgetSession: true };
  }
  if (frame.code === 'auth.resume_failed') {
    // The session is gone (expired, or the gateway restarted): start a new one
    // at once; the application learns it from 'connected' {resumed: false}.
    return { do: 'reconnect', reason: err.message, code: frame.code, delayMs: 0, forgetSession: true };
  }
  const verdict: CarrierVerdict = { do: 'reconnect', reason: err.message, code: frame.code, emitError: err };
  if (frame.retryAfterMs !== undefined) verdict.delayMs = frame.retryAfterMs;
  return verdict;
}

/** A Bye; `switching`: a switch of ours has a candidate carrier open. */
export function byeVerdict(bye: Bye, switching: boolean): CarrierVerdict {
  if (bye.code === 'session.moved' && switching) {
    // Our own switch: the gateway may tell the old carrier before the new
    // one hears its Welcome. Let the old one go quietly and wait.
    return { do: 'let-go' };
  }
  if (FATAL_AUTH_CODES.has(bye.code)) {
    // Disabled, removed or re-keyed by the operator while connected: a new Hello would be refused too.
    return { do: 'fail', error: errorFromFrame(bye), emitError: true };
  }
  if (bye.code === 'session.replaced') {
    // A newer Hello of this device took over: fighting back would only ping-pong it.
    return { do: 'fail', error: errorFromFrame(bye), emitError: false };
  }
  // session.moved without a switch of ours: only a Resume with our resume
  // token moves a session, so it was one of our own carriers (a reconnect
  // racing a switch); resuming again converges on the newest.
  const verdict: CarrierVerdict = {
    do: 'reconnect',
    reason: bye.message || bye.code,
    code: bye.code,
    forgetSession: !bye.resumable,
    // A draining edge refuses new carriers: resume on another one, or on this one once it is
    // back from its restart, which takes seconds: the retries stay short meanwhile.
    moveOn: bye.code === 'session.draining',
    backSoon: bye.code === 'session.draining',
  };
  if (bye.reconnectAfterMs !== undefined) verdict.delayMs = bye.reconnectAfterMs;
  return verdict;
}

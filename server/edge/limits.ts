/**
 * Limits of the edge and their defaults: per device (frames, queues, replay)
 * and before authentication (the Hello deadline, unauthenticated connections
 * per source address and in all, failed attempts). Each limit ends in a
 * typed fatal Error or an HTTP refusal and a close, never in unbounded memory
 * (SPEC.md §5).
 */
import { readFileSync } from 'node:fs';
import { DEFAULT_LIMITS, type DecodeLimits } from '../../device-protocol/messages.ts';

export interface EdgeLimitOptions {
  /** Largest frame a device may send (announced in Welcome). */
  maxFrameBytes?: number;
  /** Sustained frames per second a device may send (token bucket refill rate), whatever its carriers. */
  maxFramesPerSecond?: number;
  /** Bucket size: how many frames a device may send in a burst. */
  burstFrames?: number;
  /** Bytes handed to a carrier but not yet written to the socket (slow reader). */
  maxQueuedBytes?: number;
  /** Unacked sequenced frames kept per session for replay. */
  maxReplayFrames?: number;
  /** Unacked sequenced bytes kept per session for replay. */
  maxReplayBytes?: number;
  /** A connection must have sent Hello or Resume and been answered within this long of opening. */
  helloTimeoutMs?: number;
  /** Connections without a session yet, per source address (IPv6: per /64). */
  maxUnauthenticatedPerAddress?: number;
  /** Connections without a session yet, in all; default a quarter of the process's open-file limit. */
  maxUnauthenticated?: number;
  /**
   * Frames per second (also the burst) the connections of one source address
   * may send before they have a session: Hello, Resume and what rides right
   * behind them. One bucket per address, so a new connection brings no new one.
   */
  preAuthFramesPerSecondPerAddress?: number;
  /** Refused Hello/Resume attempts per (source address, IMEI) per minute (also the burst). */
  authFailuresPerDevicePerMinute?: number;
  /** Refused Hello/Resume attempts per source address per minute, whatever the IMEI (also the burst). */
  authFailuresPerAddressPerMinute?: number;
}

export type EdgeLimits = Required<EdgeLimitOptions>;

/**
 * Connections without a session when the open-file limit cannot be read (not
 * Linux) or is unlimited: enough for devices that authenticate in
 * milliseconds, far below what a process can hold.
 */
const FALLBACK_MAX_UNAUTHENTICATED = 10_000;

/**
 * The soft RLIMIT_NOFILE of this process, read from /proc/self/limits (node
 * has no getrlimit); undefined when unknown or unlimited.
 */
export function openFileLimit(limitsText?: string): number | undefined {
  let text = limitsText;
  if (text === undefined) {
    try {
      text = readFileSync('/proc/self/limits', 'utf8');
    } catch {
      return undefined;
    }
  }
  const m = /^Max open files\s+(\S+)/m.exec(text);
  const soft = m?.[1] === undefined ? Number.NaN : Number(m[1]);
  return Number.isSafeInteger(soft) && soft > 0 ? soft : undefined;
}

/**
 * A quarter of the open-file limit: unauthenticated connections can take no
 * more, so that authenticated devices, the ops endpoint (/healthz, /metrics),
 * the bus and backend connections always find file descriptors.
 */
export function defaultMaxUnauthenticated(fileLimit: number | undefined): number {
  return fileLimit === undefined ? FALLBACK_MAX_UNAUTHENTICATED : Math.max(1, Math.floor(fileLimit / 4));
}

export const DEFAULT_EDGE_LIMITS: EdgeLimits = {
  maxFrameBytes: 256 * 1024,
  maxFramesPerSecond: 50,
  burstFrames: 200,
  maxQueuedBytes: 512 * 1024,
  maxReplayFrames: 1000,
  maxReplayBytes: 4 * 1024 * 1024,
  // A handset on a slow link sends Hello right after the upgrade; 10 s covers a
  // few GPRS round trips and the registry, and no longer holds a socket that never speaks.
  helloTimeoutMs: 10_000,
  // A carrier NAT puts thousands of devices behind one address, but each is
  // unauthenticated only for the milliseconds of its handshake.
  maxUnauthenticatedPerAddress: 256,
  maxUnauthenticated: FALLBACK_MAX_UNAUTHENTICATED,
  // A carrier NAT's devices come back after a drain within its 1–5 s jitter:
  // 10,000 behind one address is 2,000 a second for five seconds.
  preAuthFramesPerSecondPerAddress: 2000,
  authFailuresPerDevicePerMinute: 10,
  // Sized for a carrier NAT: 5,000 devices behind one address, a tenth of them
  // failing once in the same minute (a secret rotation), still stay under it;
  // and a thousand guesses a minute against a 128-bit secret get nowhere.
  authFailuresPerAddressPerMinute: 1000,
};
/** Answers to the same request id remembered per session. */
export const MAX_ANSWERED_IDS = 1000;
/** Requests of one session in flight at once; more are refused (retryable). */
export const MAX_INFLIGHT_REQUESTS = 256;
/** Frames a device may send after Hello/Resume before Welcome; they are handled after it. */
export const MAX_EARLY_FRAMES = 32;

/**
 * The limits of one edge: the defaults, then `options`. `maxUnauthenticated`
 * unset is a quarter of this process's open-file limit (read here, once per edge).
 */
export function resolveEdgeLimits(options: EdgeLimitOptions | undefined, fileLimit?: number): EdgeLimits {
  const out: EdgeLimits = {
    ...DEFAULT_EDGE_LIMITS,
    maxUnauthenticated: defaultMaxUnauthenticated(fileLimit ?? openFileLimit()),
  };
  if (options !== undefined) {
    for (const key of Object.keys(DEFAULT_EDGE_LIMITS) as (keyof EdgeLimits)[]) {
      const v = options[key];
      if (v === undefined) continue;
      if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
        throw new RangeError(`edge limit ${key} must be a positive number`);
      }
      out[key] = v;
    }
  }
  return out;
}

/** Decoder limits for frames from devices: the codec defaults, capped by the edge's frame size. */
export function deviceDecodeLimits(limits: EdgeLimits): DecodeLimits {
  return {
    ...DEFAULT_LIMITS,
    maxFrameBytes: limits.maxFrameBytes,
    maxStringBytes: Math.min(DEFAULT_LIMITS.maxStringBytes, limits.maxFrameBytes),
    maxBytesLength: Math.min(DEFAULT_LIMITS.maxBytesLength, limits.maxFrameBytes),
  };
}

/**
 * Token bucket kept in two numbers on its owner (no object, no timer):
 * `tokens` left and `tokensAt`, the time they were last refilled. The owner
 * is the device session, or before it the source address (pre-auth.ts), never
 * a carrier: a fresh carrier must not bring a fresh bucket. A new bucket has
 * `tokens` Infinity: full, whatever its size.
 */
export interface RateState {
  tokens: number;
  tokensAt: number;
}

/** Takes one token from a bucket of `burst` refilled at `perSecond`; false when it is empty. */
export function takeTokenOf(state: RateState, burst: number, perSecond: number, now: number): boolean {
  const elapsed = now - state.tokensAt;
  if (elapsed > 0 || state.tokens > burst) {
    state.tokens = Math.min(burst, state.tokens + (Math.max(0, elapsed) * perSecond) / 1000);
    state.tokensAt = now;
  }
  if (state.tokens < 1) return false;
  state.tokens -= 1;
  return true;
}

/** Takes one frame token of a device (the session's bucket); false when it is over its rate. */
export function takeToken(state: RateState, limits: EdgeLimits, now: number): boolean {
  return takeTokenOf(state, limits.burstFrames, limits.maxFramesPerSecond, now);
}

/**
 * Per-device limits of the edge and their defaults. Each limit ends in a
 * typed fatal Error and a close, never in unbounded memory (SPEC.md §5).
 */
import { DEFAULT_LIMITS, type DecodeLimits } from '../../device-protocol/messages.ts';

export interface EdgeLimitOptions {
  /** Largest frame a device may send (announced in Welcome). */
  maxFrameBytes?: number;
  /** Sustained frames per second a device may send (token bucket refill rate). */
  maxFramesPerSecond?: number;
  /** Bucket size: how many frames a device may send in a burst. */
  burstFrames?: number;
  /** Bytes handed to a carrier but not yet written to the socket (slow reader). */
  maxQueuedBytes?: number;
  /** Unacked sequenced frames kept per session for replay. */
  maxReplayFrames?: number;
  /** Unacked sequenced bytes kept per session for replay. */
  maxReplayBytes?: number;
}

export type EdgeLimits = Required<EdgeLimitOptions>;

export const DEFAULT_EDGE_LIMITS: EdgeLimits = {
  maxFrameBytes: 256 * 1024,
  maxFramesPerSecond: 50,
  burstFrames: 200,
  maxQueuedBytes: 512 * 1024,
  maxReplayFrames: 1000,
  maxReplayBytes: 4 * 1024 * 1024,
};

/** Answers to the same request id remembered per session. */
export const MAX_ANSWERED_IDS = 1000;
/** Requests of one session in flight at once; more are refused (retryable). */
export const MAX_INFLIGHT_REQUESTS = 256;
/** Frames a device may send after Hello/Resume before Welcome; they are handled after it. */
export const MAX_EARLY_FRAMES = 32;

export function resolveEdgeLimits(options: EdgeLimitOptions | undefined): EdgeLimits {
  const out: EdgeLimits = { ...DEFAULT_EDGE_LIMITS };
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
 * Token bucket kept in two numbers on the carrier (no object, no timer):
 * `tokens` left and `at`, the time they were last refilled.
 */
export interface RateState {
  tokens: number;
  tokensAt: number;
}

/** Takes one token; false when the bucket is empty (the device is over its rate). */
export function takeToken(state: RateState, limits: EdgeLimits, now: number): boolean {
  const elapsed = now - state.tokensAt;
  if (elapsed > 0) {
    state.tokens = Math.min(limits.burstFrames, state.tokens + (elapsed * limits.maxFramesPerSecond) / 1000);
    state.tokensAt = now;
  }
  if (state.tokens < 1) return false;
  state.tokens -= 1;
  return true;
}

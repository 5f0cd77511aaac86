/**
 * The delay before each reconnect attempt of the Handset SDK: exponential,
 * capped, jittered. Pure; the random source is an argument (the session
 * state machine passes its injected one).
 */

export interface BackoffOptions {
  /** Delay before the first retry. Default 500. */
  initialMs?: number;
  /** Cap of the delay. Default 30000. */
  maxMs?: number;
  /** Growth per attempt. Default 2. */
  factor?: number;
  /** Fraction of the delay that is random (0 = none, 1 = anywhere in [0, delay]). Default 0.5. */
  jitter?: number;
}

const DEFAULT_BACKOFF: Required<BackoffOptions> = { initialMs: 500, maxMs: 30_000, factor: 2, jitter: 0.5 };

/**
 * Delay before retry number `attempt` (0-based): exponential, capped, with the
 * top `jitter` fraction randomised so that devices dropped together (a node
 * restart) do not come back together.
 */
export function backoffDelay(
  attempt: number,
  options: BackoffOptions = {},
  random: () => number = Math.random,
) {
  const { initialMs, maxMs, factor, jitter } = { ...DEFAULT_BACKOFF, ...options };
  const base = Math.min(maxMs, initialMs * factor ** Math.max(0, attempt));
  const j = Math.min(1, Math.max(0, jitter));
  return Math.round(base * (1 - j * random()));
}

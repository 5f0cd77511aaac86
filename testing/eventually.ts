/**
 * The one "eventually" of the test suites: polls a probe until it yields a
 * value (or true), and fails with what it was waiting for and the last value
 * seen. It is a readiness wait with a generous bound, never a timed
 * assertion: how long the wait took is not checked.
 */
import { AssertionError } from 'node:assert';

export interface EventuallyOptions {
  /** Give up after this long; default 20 s (peers on a loaded 2-core machine are slow). */
  timeoutMs?: number;
  /** Pause between probes; default 10 ms. */
  intervalMs?: number;
}

const DEFAULT_TIMEOUT_MS = 20_000;
const DEFAULT_INTERVAL_MS = 10;

/**
 * Resolves with the probe's first value that is neither undefined, null nor
 * false (a boolean probe resolves with true). A probe that throws is retried:
 * a server not listening yet refuses, and that is what the wait is for; the
 * last error is reported if time runs out. An AssertionError is not retried:
 * an assertion inside a probe is a check of each answer (say, "only
 * bus.timeout until the session is back"), and one that fails fails the test
 * at once, as it would outside the wait.
 */
export async function eventually<T>(
  what: string,
  probe: () => T | undefined | null | false | Promise<T | undefined | null | false>,
  options: EventuallyOptions = {},
): Promise<T> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const intervalMs = options.intervalMs ?? DEFAULT_INTERVAL_MS;
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== null && v !== false) return v;
      last = v;
      lastError = undefined;
    } catch (err) {
      if (err instanceof AssertionError) throw err;
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const seen =
        lastError !== undefined
          ? `; last error: ${lastError instanceof Error ? lastError.message : String(lastError)}`
          : `; last value: ${String(last)}`;
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${seen}`, {
        cause: lastError,
      });
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

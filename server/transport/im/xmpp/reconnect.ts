/**
 * The account's connection loop and its states: connecting → online →
 * retrying → online …, or auth_failed (terminal), or stopped. Each failed
 * attempt waits longer: the delay doubles from `initialMs` up to `maxMs`,
 * then ±50 % jitter, so accounts of one server do not all come back at once
 * after it restarts. (The library's own reconnect uses a fixed delay and is
 * switched off.)
 */
import type { GatewayError } from '../../../../device-protocol/errors.ts';
import { deferred } from './async.ts';
import { mapXmppError } from './errors.ts';
import type { XmppAccountState } from './types.ts';

export interface ReconnectOptions {
  /** One connection attempt; resolves once the account is online. */
  connect(): Promise<void>;
  /** Resolves when the stream of the last successful attempt is gone. */
  disconnected(): Promise<void>;
  /** Tears down what a failed attempt left. */
  drop(): Promise<void>;
  /** The state changed (called once per change of state or error code). */
  onState(state: XmppAccountState, error?: GatewayError): void;
  /**
   * The loop has ended for good: the server refused the credentials, or the
   * outbound policy the destination (no retry can change either).
   */
  onTerminal(error: GatewayError): void;
  /** In [0, 1). */
  random: () => number;
  backoff?: { initialMs?: number; maxMs?: number };
}

/** The delay before reconnect attempt `attempt` (0 = the first retry). */
export function backoffDelay(
  attempt: number,
  { initialMs, maxMs }: { initialMs: number; maxMs: number },
  random: () => number,
): number {
  const base = Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 20));
  return Math.round(base * (0.5 + random() * 0.5));
}

export class Reconnect {
  readonly #opts: ReconnectOptions;
  readonly #backoff: { initialMs: number; maxMs: number };
  #state: XmppAccountState = 'stopped';
  #lastErrorCode?: string;
  #stopped = false;
  #everOnline = false;
  #attempt = 0;
  #running?: Promise<void>;
  readonly #first = deferred<void>();
  #wake?: () => void;

  constructor(opts: ReconnectOptions) {
    this.#opts = opts;
    this.#backoff = { initialMs: opts.backoff?.initialMs ?? 1000, maxMs: opts.backoff?.maxMs ?? 60_000 };
  }

  get state(): XmppAccountState {
    return this.#state;
  }

  /** Stopped for good (by stop(), an auth failure, or a first failure when not persistent). */
  get stopped(): boolean {
    return this.#stopped;
  }

  /**
   * Starts the loop once. Resolves once online; rejects on the first failure
   * unless `persistent`. Authentication failure always stops it.
   */
  start(persistent: boolean): Promise<void> {
    if (!this.#running) {
      this.setState('connecting');
      this.#running = this.#run(persistent);
      this.#first.promise.catch(() => {});
    }
    return this.#first.promise;
  }

  /** Ends the loop: no more attempts; a start() still waiting fails with `error`. */
  stop(error: GatewayError): void {
    this.#stopped = true;
    this.#wake?.();
    this.#first.reject(error);
  }

  /** Resolves once the loop has returned. */
  async finished(): Promise<void> {
    await this.#running?.catch(() => {});
  }

  setState(state: XmppAccountState, error?: GatewayError): void {
    if (this.#state === state && this.#lastErrorCode === error?.code) return;
    this.#state = state;
    this.#lastErrorCode = error?.code;
    try {
      this.#opts.onState(state, error);
    } catch {
      // a listener must not break the loop
    }
  }

  async #run(persistent: boolean): Promise<void> {
    const opts = this.#opts;
    while (!this.#stopped) {
      try {
        await opts.connect();
        if (this.#stopped) break;
        this.#attempt = 0;
        this.#everOnline = true;
        this.setState('online');
        this.#first.resolve();
        await opts.disconnected();
        if (this.#stopped) break;
        this.setState('retrying');
      } catch (err) {
        const error = mapXmppError(err);
        await opts.drop();
        if (this.#stopped) break;
        if (error.code === 'im.auth_failed') {
          this.#stopped = true;
          this.setState('auth_failed', error);
          this.#first.reject(error);
          opts.onTerminal(error);
          break;
        }
        if (error.code === 'policy.destination_not_allowed') {
          this.#stopped = true;
          this.#first.reject(error);
          this.setState('stopped', error);
          opts.onTerminal(error);
          break;
        }
        if (!this.#everOnline && !persistent) {
          this.#stopped = true;
          this.#first.reject(error);
          this.setState('stopped', error);
          break;
        }
        this.setState('retrying', error);
      }
      await this.#sleep(backoffDelay(this.#attempt++, this.#backoff, opts.random));
    }
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#wake = undefined;
        resolve();
      }, ms);
      this.#wake = () => {
        clearTimeout(timer);
        this.#wake = undefined;
        resolve();
      };
    });
  }
}

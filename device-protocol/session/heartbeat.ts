/**
 * The device's heartbeat on a live carrier (SPEC.md §5): a Ping every
 * `heartbeatMs` the gateway's Welcome gives, and a carrier silent for
 * `DEAD_AFTER_HEARTBEATS` heartbeats is dead: a frozen gateway keeps TCP
 * open and answers nothing, so only the silence tells.
 */

import type { TimerEffects } from './effects.ts';

/**
 * A carrier silent for this many heartbeats is dead. The SDK pings every
 * heartbeat and the gateway answers at once, so a live carrier is never
 * silent for much more than one; the gateway gives the device 2.5 (SPEC.md §5).
 */
export const DEAD_AFTER_HEARTBEATS = 2;

export class Heartbeat {
  readonly #timers: TimerEffects;
  readonly #now: () => number;
  #lastRxAt = 0;
  #heartbeatMs = 0;
  /** When the next Ping is due (the heartbeat timer also fires at the silence deadline). */
  #nextPingAt = 0;

  constructor(timers: TimerEffects, now: () => number) {
    this.#timers = timers;
    this.#now = now;
  }

  /** Something came from the gateway. */
  heard(): void {
    this.#lastRxAt = this.#now();
  }

  /** A Welcome: ping every `heartbeatMs` from now. */
  start(heartbeatMs: number): void {
    this.#timers.cancel('heartbeat');
    this.#lastRxAt = this.#now();
    // From the gateway: anything but a positive number turns the heartbeat off, as 0 does.
    this.#heartbeatMs = Number.isFinite(heartbeatMs) && heartbeatMs > 0 ? heartbeatMs : 0;
    if (this.#heartbeatMs === 0) return;
    this.#nextPingAt = this.#now() + this.#heartbeatMs;
    this.#timers.schedule('heartbeat', this.#nextPingAt);
  }

  stop(): void {
    this.#timers.cancel('heartbeat');
  }

  /**
   * The heartbeat timer fired on a live carrier. It fires when a Ping is due
   * and at the silence deadline, whichever comes first: a Ping tick alone
   * would notice a freeze only at the first tick past the deadline, up to a
   * heartbeat late. Calls `ping` when one is due; returns why the carrier is
   * dead, or undefined while it lives.
   */
  tick(ping: () => void): string | undefined {
    const heartbeatMs = this.#heartbeatMs;
    if (heartbeatMs === 0) return undefined;
    const now = this.#now();
    const deadline = this.#lastRxAt + DEAD_AFTER_HEARTBEATS * heartbeatMs;
    if (now >= deadline) return `nothing heard for ${DEAD_AFTER_HEARTBEATS}× ${heartbeatMs} ms`;
    if (now >= this.#nextPingAt) {
      ping();
      this.#nextPingAt = now + heartbeatMs;
    }
    this.#timers.schedule('heartbeat', Math.min(this.#nextPingAt, deadline));
    return undefined;
  }
}

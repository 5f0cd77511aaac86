/**
 * Pauses of this process (SIGSTOP, a VM or container pause, a long GC): a
 * timer meant to fire every TICK_MS notes each time it fired much later.
 *
 * A transport paused for longer than the membership TTL was replaced while
 * it slept: the other transports took its devices, and the devices' requests
 * timed out and went there. Work it had started before the pause must not
 * finish what cannot be taken back (mail.send's SMTP exchange): the resend
 * made it already.
 */

const TICK_MS = 250;
/** How long pauses are remembered. */
const KEEP_MS = 10 * 60_000;

export interface StallClock {
  now(): number;
  every(ms: number, fn: () => void): { unref?(): void };
}

const systemClock: StallClock = {
  now: () => Date.now(),
  every: (ms, fn) => setInterval(fn, ms),
};

export class Stalls {
  readonly #clock: StallClock;
  #last: number;
  /** [end, length] of each pause longer than a tick, oldest first. */
  readonly #pauses: [number, number][] = [];

  constructor(clock: StallClock = systemClock) {
    this.#clock = clock;
    this.#last = clock.now();
    clock.every(TICK_MS, () => this.#tick()).unref?.();
  }

  #tick(): void {
    const now = this.#clock.now();
    const gap = now - this.#last - TICK_MS;
    this.#last = now;
    if (gap > TICK_MS) this.#pauses.push([now, gap]);
    while (this.#pauses.length > 0 && this.#pauses[0]![0] < now - KEEP_MS) this.#pauses.shift();
  }

  /** The longest pause of this process that ended after `since` (ms; 0: none), the one under way included. */
  longestSince(since: number): number {
    let longest = 0;
    for (const [end, length] of this.#pauses) if (end > since && length > longest) longest = length;
    // A pause that only ended now has not been ticked yet.
    const current = this.#clock.now() - this.#last - TICK_MS;
    return Math.max(longest, current > TICK_MS ? current : 0);
  }
}

let shared: Stalls | undefined;

/** The process's one watch, started on first use. */
export function processStalls(): Stalls {
  shared ??= new Stalls();
  return shared;
}

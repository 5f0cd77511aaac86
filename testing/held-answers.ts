/**
 * A local push service's answers held back while `holding`: each request
 * that arrives waits until release(), so a test sees how many a sender has
 * under way at once (`held`, and the most ever held, `maxHeld`) without
 * timing anything.
 */
export class HeldAnswers {
  holding = false;
  #held: (() => void)[] = [];
  maxHeld = 0;

  /** Answers now, or once released while holding. */
  answer(send: () => void): void {
    if (!this.holding) {
      send();
      return;
    }
    this.#held.push(send);
    this.maxHeld = Math.max(this.maxHeld, this.#held.length);
  }

  get held(): number {
    return this.#held.length;
  }

  /** Answers every request held so far. */
  release(): void {
    const held = this.#held;
    this.#held = [];
    for (const send of held) send();
  }
}

/**
 * Starts `n` sends at once against a service that holds its answers, and
 * releases them a round at a time (a round: as many as the sender may have
 * under way, or all that are left) until all are through; resolves with the
 * most the service ever held at once. A sender without a bound shows them
 * all in the first round.
 */
export async function burstThroughHeld(
  held: HeldAnswers,
  opts: { n: number; limit: number; send: () => Promise<unknown>; started?: () => void },
): Promise<number> {
  const { eventually } = await import('./eventually.ts');
  const { n, limit } = opts;
  held.holding = true;
  let done = 0;
  const all = Array.from({ length: n }, () => opts.send().finally(() => done++));
  opts.started?.();
  try {
    while (done < n) {
      await eventually('a round of sends held by the service', () => held.held >= Math.min(limit, n - done));
      held.release();
    }
    await Promise.all(all);
  } finally {
    held.holding = false;
    held.release();
  }
  return held.maxHeld;
}

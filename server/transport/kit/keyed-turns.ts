/**
 * One at a time per key: run(key, fn) starts fn once every earlier run of
 * the same key has settled (fulfilled or not); runs of other keys do not
 * wait. For a check-then-act that must not interleave with itself, e.g.
 * mail.send's "sent already?" and the send (two resends of one clientId
 * that a bus outage held back and let go together).
 */
export class KeyedTurns {
  readonly #last = new Map<string, Promise<unknown>>();

  run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const before = this.#last.get(key);
    const mine = (before ? before.then(noop, noop) : Promise.resolve()).then(fn);
    const settled = mine.then(noop, noop);
    this.#last.set(key, settled);
    void settled.then(() => {
      if (this.#last.get(key) === settled) this.#last.delete(key);
    });
    return mine;
  }

  /** Keys with a run under way or waiting (tests). */
  get size(): number {
    return this.#last.size;
  }
}

function noop(): void {}

/**
 * At most `size` tasks under way at once; the others wait their turn, first
 * come first served (a slot that frees is handed to the longest waiting).
 * The wake-up senders' bound on requests in flight (Web Push, FCM, APNs).
 */

/**
 * Requests under way at once per sender, unless configured: enough for 1,000
 * wake-ups a second to a service 250 ms away, few enough that a burst does
 * not open a connection or a stream per wake-up.
 */
export const DEFAULT_IN_FLIGHT = 256;
export class Slots {
  readonly #size: number;
  #taken = 0;
  readonly #waiting: (() => void)[] = [];

  constructor(size: number) {
    if (!Number.isInteger(size) || size < 1) throw new RangeError('Slots needs a size of at least 1.');
    this.#size = size;
  }

  /** Runs `task` once a slot is free; the slot is free again when it settles. */
  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.#taken < this.#size) this.#taken++;
    else await new Promise<void>((resolve) => this.#waiting.push(resolve));
    try {
      return await task();
    } finally {
      const next = this.#waiting.shift();
      // Handed over as it is: the count stays, the next task has it.
      if (next) next();
      else this.#taken--;
    }
  }

  /** Tasks under way, and waiting (tests, metrics). */
  get busy(): number {
    return this.#taken;
  }

  get waiting(): number {
    return this.#waiting.length;
  }
}

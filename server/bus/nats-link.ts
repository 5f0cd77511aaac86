/**
 * What the NATS bus knows of its own connection, and what it does while it
 * is down (issue 12, "all NATS servers down"). The NATS client drops every
 * byte written while it reconnects (each dial starts with an empty outbound
 * buffer), and an answer to a request in flight when the connection went is
 * lost with it, so without this a bus outage cost every publish, request and
 * device push made during it, and each request its whole timeout:
 *   - publishes wait here (bounded) and go out in order a moment after it
 *     is back (HELD_RELEASE_MS: the other clients reconnect and resubscribe
 *     about when this one does; a publish nobody hears yet is lost);
 *   - requests wait for it within their own timeout, then go;
 *   - requests in flight when it went fail at once (retryable), instead of
 *     waiting out a timeout for an answer that cannot come;
 *   - for a while after a reconnect, "no responders" is taken for the other
 *     side not having resubscribed yet (its own reconnect, cluster routes
 *     forming), and the request is asked again until its timeout.
 * Pure state with an injected clock: nats.ts feeds it the client's status.
 */

export interface LinkClock {
  now(): number;
}

/** How long after a reconnect "no responders" is asked again rather than believed. */
export const RECONNECT_GRACE_MS = 4000;
/** Between two asks of a request answered "no responders" within the grace. */
export const NO_RESPONDERS_RETRY_MS = 100;
/** How long after a reconnect the held publishes (and those made meanwhile) wait before they go. */
export const HELD_RELEASE_MS = 1000;
/** Publishes kept while the connection is down: at most this many, and this many bytes. */
export const HELD_MAX_MESSAGES = 10_000;
export const HELD_MAX_BYTES = 64 * 1024 * 1024;

export interface HeldPublish {
  subject: string;
  bytes: Uint8Array;
}

export class NatsLink {
  #up = true;
  #closed = false;
  #reconnectedAt: number | undefined;
  #waiters = new Set<(up: boolean) => void>();
  #onLost = new Set<() => void>();
  #listeners = new Set<(up: boolean) => void>();
  #held: HeldPublish[] = [];
  #heldBytes = 0;
  /** Publishes dropped (oldest first) because the held ones were over the bounds. */
  dropped = 0;
  readonly #clock: LinkClock;

  constructor(clock: LinkClock = { now: () => Date.now() }) {
    this.#clock = clock;
  }

  get up(): boolean {
    return this.#up && !this.#closed;
  }

  /** Publishes are held: the connection is down, or came back and the held ones have not gone yet. */
  get holding(): boolean {
    return !this.#closed && (!this.#up || this.#held.length > 0 || this.#releasing);
  }

  #releasing = false;

  get closed(): boolean {
    return this.#closed;
  }

  /** The client lost its connection: requests in flight fail, later ones wait. */
  down(): void {
    if (!this.#up || this.#closed) return;
    this.#up = false;
    for (const lost of [...this.#onLost]) lost();
    this.#onLost.clear();
    this.#emit(false);
  }

  /**
   * The client is connected again: waiting requests go on; publishes stay
   * held until release() (the caller calls it HELD_RELEASE_MS later).
   */
  reconnected(): void {
    if (this.#closed || this.#up) return;
    this.#up = true;
    this.#releasing = true;
    this.#reconnectedAt = this.#clock.now();
    this.#wake(true);
    this.#emit(true);
  }

  /** The held publishes, in order, to send now; from here on publishes go straight out (while up). */
  release(): HeldPublish[] {
    if (this.#closed || !this.#up) return [];
    this.#releasing = false;
    const held = this.#held;
    this.#held = [];
    this.#heldBytes = 0;
    return held;
  }

  /** The bus is closed: waiting requests give up, nothing is held any more. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#held = [];
    this.#heldBytes = 0;
    this.#wake(false);
    for (const lost of [...this.#onLost]) lost();
    this.#onLost.clear();
    this.#listeners.clear();
  }

  /** Keeps a publish for the reconnect; over the bounds the oldest held ones go. */
  hold(subject: string, bytes: Uint8Array): void {
    if (this.#closed) return;
    this.#held.push({ subject, bytes });
    this.#heldBytes += bytes.byteLength;
    while (
      this.#held.length > 1 &&
      (this.#held.length > HELD_MAX_MESSAGES || this.#heldBytes > HELD_MAX_BYTES)
    ) {
      const gone = this.#held.shift()!;
      this.#heldBytes -= gone.bytes.byteLength;
      this.dropped++;
    }
  }

  get heldCount(): number {
    return this.#held.length;
  }

  /** Resolves true once the connection is up (at once when it is), false after `ms` or when closed. */
  waitUp(ms: number): Promise<boolean> {
    if (this.#closed) return Promise.resolve(false);
    if (this.#up) return Promise.resolve(true);
    if (ms <= 0) return Promise.resolve(false);
    return new Promise((resolve) => {
      const done = (up: boolean) => {
        clearTimeout(timer);
        this.#waiters.delete(done);
        resolve(up);
      };
      const timer = setTimeout(() => done(false), ms);
      timer.unref?.();
      this.#waiters.add(done);
    });
  }

  /** Calls `lost` once if the connection goes down (or the bus closes) before the returned undo is called. */
  whileUp(lost: () => void): () => void {
    this.#onLost.add(lost);
    return () => this.#onLost.delete(lost);
  }

  /** Is "no responders" now likely the other side not being back yet? */
  inGrace(): boolean {
    return this.#reconnectedAt !== undefined && this.#clock.now() - this.#reconnectedAt < RECONNECT_GRACE_MS;
  }

  /** Connection down (false) and up again (true); returns the undo. */
  onChange(listener: (up: boolean) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #wake(up: boolean): void {
    for (const done of [...this.#waiters]) done(up);
  }

  #emit(up: boolean): void {
    for (const listener of [...this.#listeners]) {
      try {
        listener(up);
      } catch {
        // A listener's failure is its own; the others still hear.
      }
    }
  }
}

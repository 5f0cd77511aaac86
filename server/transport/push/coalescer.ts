/**
 * At most one wake-up per device per interval (issue 14): the first item a
 * device without a session misses wakes it at once; what comes within the
 * interval after that is counted, and goes as one trailing wake-up when the
 * interval ends, carrying the count of everything the device has missed
 * since its session went (not only since the last wake-up), so the handset
 * can show "3 new" however many wake-ups it slept through.
 *
 * Pure: the clock and the timers are injected, so that the unit tests drive
 * it without waiting. reset() forgets a device (its session is back).
 */

import type { WakePreview } from './preview.ts';

export type WakeKind = 'mail' | 'chat';

/** What one wake-up says: the items missed since the device's session went, by kind. */
export interface WakeTally {
  mail: number;
  chat: number;
  /** The kind of the newest item: the payload's `kind`, its TTL and urgency. */
  kind: WakeKind;
  /** When the oldest item this wake-up is the first news of came (the latency's start). */
  since: number;
  /** The newest item's sender and subject (bounded, preview.ts), if its source told them. */
  preview?: WakePreview | undefined;
}

export interface CoalescerClock {
  now(): number;
  setTimer(fn: () => void, ms: number): unknown;
  clearTimer(handle: unknown): void;
}

export interface WakeCoalescerOptions {
  intervalMs: number;
  /** Devices tracked at most; beyond it the longest-tracked is forgotten (a bound on memory). */
  maxDevices?: number;
  clock?: CoalescerClock;
  send(deviceId: string, tally: WakeTally): void;
}

interface DeviceState {
  mail: number;
  chat: number;
  kind: WakeKind;
  preview: WakePreview | undefined;
  /** Set while items wait for the next wake-up: when the first of them came. */
  waitingSince: number | undefined;
  lastSentAt: number | undefined;
  timer: unknown;
}

const systemClock: CoalescerClock = {
  now: Date.now,
  setTimer: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref?.();
    return t;
  },
  clearTimer: (t) => clearTimeout(t as ReturnType<typeof setTimeout>),
};

export class WakeCoalescer {
  readonly #devices = new Map<string, DeviceState>();
  readonly #interval: number;
  readonly #max: number;
  readonly #clock: CoalescerClock;
  readonly #send: WakeCoalescerOptions['send'];

  constructor(opts: WakeCoalescerOptions) {
    this.#interval = opts.intervalMs;
    this.#max = opts.maxDevices ?? 100_000;
    this.#clock = opts.clock ?? systemClock;
    this.#send = opts.send;
  }

  /**
   * `n` items of `kind` the device could not be given: a wake-up now, or
   * counted for the next. `preview`: the newest one's; absent, the wake-up
   * shows none (it must not name an older item's sender as the newest's).
   */
  note(deviceId: string, kind: WakeKind, n = 1, preview?: WakePreview): void {
    if (n <= 0) return;
    const now = this.#clock.now();
    let s = this.#devices.get(deviceId);
    if (!s) {
      s = {
        mail: 0,
        chat: 0,
        kind,
        preview,
        waitingSince: undefined,
        lastSentAt: undefined,
        timer: undefined,
      };
      this.#devices.set(deviceId, s);
      this.#bound();
    }
    s[kind] += n;
    s.kind = kind;
    s.preview = preview;
    s.waitingSince ??= now;
    if (s.timer !== undefined) return;
    const due = s.lastSentAt === undefined ? now : s.lastSentAt + this.#interval;
    if (due <= now) this.#fire(deviceId, s);
    else s.timer = this.#clock.setTimer(() => this.#fire(deviceId, s), due - now);
  }

  /** The device is back (a session): what it missed is its own business again. */
  reset(deviceId: string): void {
    const s = this.#devices.get(deviceId);
    if (!s) return;
    if (s.timer !== undefined) this.#clock.clearTimer(s.timer);
    this.#devices.delete(deviceId);
  }

  /** Devices with missed items tracked (tests, metrics). */
  get size(): number {
    return this.#devices.size;
  }

  close(): void {
    for (const id of [...this.#devices.keys()]) this.reset(id);
  }

  #fire(deviceId: string, s: DeviceState): void {
    s.timer = undefined;
    if (this.#devices.get(deviceId) !== s || s.waitingSince === undefined) return;
    const tally: WakeTally = { mail: s.mail, chat: s.chat, kind: s.kind, since: s.waitingSince };
    if (s.preview) tally.preview = s.preview;
    s.waitingSince = undefined;
    s.lastSentAt = this.#clock.now();
    this.#send(deviceId, tally);
  }

  #bound(): void {
    while (this.#devices.size > this.#max) {
      const oldest = this.#devices.keys().next().value;
      if (oldest === undefined) return;
      this.reset(oldest);
    }
  }
}

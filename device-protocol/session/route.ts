/**
 * Where and how the next carrier opens: which gateway URL (round robin over
 * edges without a load balancer, back to the last good one after a plain
 * drop), which carrier kind ('auto' tries WebSocket first and falls back to
 * long-poll when it does not open), and how long to wait before it
 * (exponential backoff, growing per round over all URLs).
 */

import { type BackoffOptions, backoffDelay } from '../backoff.ts';
import type { CarrierKind } from '../carriers/carrier.ts';
import type { HandsetReconnectingEvent, TransportMode } from '../handset-types.ts';

/** In 'auto', this many WebSocket failures to open in a row switch to long-poll. */
const WS_FAILURES_BEFORE_FALLBACK = 2;

/**
 * After a planned goodbye (Bye session.draining: the edge drains or its node
 * stops for a restart or an upgrade) the gateway is expected back within
 * seconds: for this long the backoff stays short, so that a device does not
 * sleep through the restart's end on its way to 4, 8, 16 s.
 */
export const BACK_SOON_WINDOW_MS = 30_000;
/** The backoff's cap meanwhile, unless the Bye's own spread is longer (many devices: they stay spread). */
export const BACK_SOON_MAX_MS = 1_000;

export interface RouteSettings {
  urls?: readonly string[];
  transport?: TransportMode;
  backoff?: BackoffOptions;
  random: () => number;
  /** How long a WebSocket in 'auto' has to be welcomed before it counts as failed. */
  fallbackAfterMs: number;
  requestTimeoutMs: number;
  now?: () => number;
}

export class CarrierRoute {
  readonly #settings: RouteSettings;
  readonly #urls: readonly string[];
  /** The URL the next carrier opens to. */
  #urlIndex = 0;
  /** What the application asked for ('auto' unless pinned by switch). */
  mode: TransportMode;
  /** In 'auto': the carrier to try next. */
  #autoKind: CarrierKind = 'ws';
  #wsFailures = 0;
  /** Retries since the last Welcome. */
  #attempt = 0;
  /** After a planned goodbye: until when, and with which cap, the backoff stays short. */
  #backSoon: { until: number; maxMs: number } | undefined;

  constructor(settings: RouteSettings) {
    this.#settings = settings;
    this.#urls = settings.urls !== undefined && settings.urls.length > 0 ? [...settings.urls] : [''];
    this.mode = settings.transport ?? 'auto';
  }

  /** The index of the URL the next carrier opens to. */
  get urlIndex(): number {
    return this.#urlIndex;
  }

  urlAt(index: number): string {
    return this.#urls[index] ?? '';
  }

  nextKind(): CarrierKind {
    return this.mode === 'auto' ? this.#autoKind : this.mode;
  }

  /** How long an attempt of `kind` may wait for its Welcome. */
  handshakeMs(kind: CarrierKind): number {
    const { fallbackAfterMs, requestTimeoutMs } = this.#settings;
    // A WebSocket that a proxy lets open but never answers through counts as failed in 'auto'.
    return kind === 'ws' && this.mode === 'auto'
      ? fallbackAfterMs
      : Math.max(fallbackAfterMs, requestTimeoutMs);
  }

  /**
   * The gateway behind URL `url` refused, timed out or froze: the next
   * attempt goes to the next URL (round robin, so the last good one comes
   * round again).
   */
  moveOn(url: number): void {
    if (url === this.#urlIndex) this.#urlIndex = (url + 1) % this.#urls.length;
  }

  /** A carrier to URL `url` was welcomed: the next attempt after a plain drop goes there again. */
  welcomed(url: number): void {
    this.#urlIndex = url;
    this.#attempt = 0;
    this.#wsFailures = 0;
    this.#backSoon = undefined;
  }

  /**
   * The gateway said goodbye on purpose and will be back (or another edge
   * is): retries stay short (BACK_SOON_MAX_MS, or `spreadMs` when longer:
   * the gateway spread its devices' returns that wide) for BACK_SOON_WINDOW_MS.
   */
  expectBackSoon(spreadMs = 0): void {
    const now = (this.#settings.now ?? Date.now)();
    this.#backSoon = { until: now + BACK_SOON_WINDOW_MS, maxMs: Math.max(BACK_SOON_MAX_MS, spreadMs) };
  }

  /** An attempt got no Welcome in time; returns the retry delay when it is not the backoff's. */
  attemptTimedOut(kind: CarrierKind, url: number): number | undefined {
    if (this.#urls.length > 1) {
      // A frozen edge accepts TCP and answers nothing: another URL is likelier than long-poll here.
      this.moveOn(url);
      if (kind === 'ws' && this.mode === 'auto' && ++this.#wsFailures >= WS_FAILURES_BEFORE_FALLBACK) {
        this.#autoKind = 'poll';
        this.#wsFailures = 0;
      }
      return undefined;
    }
    if (kind === 'ws' && this.mode === 'auto') {
      this.#autoKind = 'poll';
      this.#wsFailures = 0;
      return 0;
    }
    return undefined;
  }

  /** An attempt of `kind` failed to open; returns the retry delay when it is not the backoff's. */
  openFailed(kind: CarrierKind): number | undefined {
    if (this.mode !== 'auto') return undefined;
    if (kind === 'ws') {
      if (++this.#wsFailures >= WS_FAILURES_BEFORE_FALLBACK) {
        this.#autoKind = 'poll';
        this.#wsFailures = 0;
        return 0;
      }
      return undefined;
    }
    // Long-poll does not reach the gateway either: probably the gateway
    // (or the network) is down, not WebSocket. Try WebSocket again next.
    this.#autoKind = 'ws';
    return undefined;
  }

  /** Counts a retry; its delay is `delayMs`, or the backoff's for this round over all URLs. */
  nextRetry(delayMs?: number): HandsetReconnectingEvent {
    // The delay grows per round over every URL: the other edges are tried before waiting longer.
    const round = Math.floor(this.#attempt / this.#urls.length);
    const delay = delayMs ?? backoffDelay(round, this.#backoff(), this.#settings.random);
    this.#attempt++;
    return {
      attempt: this.#attempt,
      delayMs: delay,
      transport: this.nextKind(),
      url: this.urlAt(this.#urlIndex),
    };
  }

  #backoff(): BackoffOptions {
    const backoff = this.#settings.backoff ?? {};
    const soon = this.#backSoon;
    if (soon === undefined) return backoff;
    if ((this.#settings.now ?? Date.now)() >= soon.until) {
      this.#backSoon = undefined;
      return backoff;
    }
    return { ...backoff, maxMs: Math.min(backoff.maxMs ?? Number.POSITIVE_INFINITY, soon.maxMs) };
  }
}

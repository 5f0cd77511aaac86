/**
 * A carrier moves frames between a handset and the gateway: WebSocket or HTTP
 * long-poll (SPEC.md §4). Carriers know bytes, paths and status codes; the
 * session (auth, seq, acks, resume, reconnect) lives in Handset, so that both
 * carriers behave the same to it and a session can move from one to the other.
 *
 * A carrier is single-use: start() once, then frames flow until it closes.
 * It reports its end exactly once through onClose, unless the owner closed it.
 */

import { GatewayError } from '../errors.ts';
import type { Frame, Hello, Resume } from '../messages.ts';
import type { CaCertificates } from './ca-fetch.ts';

export type CarrierKind = 'ws' | 'poll';

export interface CarrierCloseInfo {
  /** Human-readable, for logs and the SDK's 'disconnected' event. */
  reason: string;
  /**
   * The carrier never reached the gateway (WebSocket: no open event; long-poll:
   * the opening POST failed below the protocol, e.g. a network error or a proxy
   * status). In 'auto' mode the SDK counts these to fall back to long-poll.
   */
  failedToOpen: boolean;
  /**
   * The gateway did not answer in time (a long-poll request timed out): it
   * may be frozen, so the SDK tries its next URL rather than this one again.
   */
  timedOut?: boolean;
  /** A local failure worth reporting (undecodable bytes, unexpected HTTP status). */
  error?: GatewayError;
}

export interface CarrierHandlers {
  onFrame(frame: Frame): void;
  onClose(info: CarrierCloseInfo): void;
  /** The carrier acked implicitly (long-poll `GET ?ack=`), so the SDK need not send an Ack for it. */
  onAck?(seq: number): void;
}

export interface CarrierOptions {
  /** Base URL: ws://, wss://, http:// or https://, optionally with a path prefix. */
  url: string;
  /** WebSocket constructor (browser WebSocket or the `ws` package). */
  WebSocket?: any;
  /** PEM CA certificates the WebSocket trusts (handed to the `ws` package; browsers use their own trust). */
  ca?: CaCertificates;
  fetch?: typeof fetch;
  /** Timeout of a long-poll POST (and margin added to a GET's wait). */
  requestTimeoutMs: number;
  /** How long a long-poll GET may be held by the gateway. */
  pollWaitMs: number;
  /** The highest seq the SDK has received; long-poll GETs carry it as `ack=`. */
  lastSeq(): number;
}

export abstract class Carrier {
  abstract readonly kind: CarrierKind;
  #closed = false;

  constructor(
    protected readonly options: CarrierOptions,
    protected readonly handlers: CarrierHandlers,
  ) {}

  /** True once the carrier ended, by itself or by close(). */
  get closed(): boolean {
    return this.#closed;
  }

  /** Opens the carrier and sends `first` (Hello for a new session, Resume otherwise) as its first frame. */
  abstract start(first: Hello | Resume): void;

  /** Sends one frame; silently dropped once the carrier is closed (the SDK resends what matters after a resume). */
  abstract send(frame: Frame): void;

  /**
   * Closes the carrier without calling onClose. Resolves once frames already
   * handed to send() were given a bounded chance to leave (a last Ack matters:
   * it spares the gateway a replay).
   */
  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    return this.shutdown();
  }

  /** Releases the carrier's resources; called once, by close() or end(). */
  protected abstract shutdown(): Promise<void>;

  /** The carrier ended by itself: release it and tell the owner, once. */
  protected end(info: CarrierCloseInfo): void {
    if (this.#closed) return;
    this.#closed = true;
    void this.shutdown().catch(() => {});
    this.handlers.onClose(info);
  }

  /** Hands frames to the owner in order, stopping if a handler closed the carrier meanwhile. */
  protected deliver(frames: Frame[]): void {
    for (const frame of frames) {
      if (this.#closed) return;
      this.handlers.onFrame(frame);
    }
  }
}

/**
 * The endpoint of a carrier under a base URL: `/v1/ws` with a ws(s) scheme,
 * `/v1/poll` with an http(s) scheme. A path in the base (a reverse proxy
 * prefix) is kept.
 */
export function carrierUrl(base: string, kind: CarrierKind): string {
  let url: URL;
  try {
    url = new URL(base);
  } catch (err) {
    throw new GatewayError('config.invalid', `not a URL: ${base}`, { field: 'url', cause: err });
  }
  const secure = url.protocol === 'wss:' || url.protocol === 'https:';
  if (!['ws:', 'wss:', 'http:', 'https:'].includes(url.protocol)) {
    throw new GatewayError(
      'config.invalid',
      `unsupported URL scheme ${url.protocol} (use ws, wss, http or https)`,
      {
        field: 'url',
      },
    );
  }
  url.protocol = kind === 'ws' ? (secure ? 'wss:' : 'ws:') : secure ? 'https:' : 'http:';
  url.pathname = `${url.pathname.replace(/\/+$/, '')}/v1/${kind === 'ws' ? 'ws' : 'poll'}`;
  url.search = '';
  url.hash = '';
  return url.toString();
}

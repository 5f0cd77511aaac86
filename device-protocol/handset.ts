/**
 * The Handset SDK: one persistent session with the gateway, for Node and
 * browsers (no `node:` imports).
 *
 * What it does for the application (SPEC.md §4, §5):
 * - authenticates with Hello (IMEI + secret, or a token), then keeps the
 *   session: Ping every `heartbeatMs`, and a carrier that stays silent for
 *   2.5× that is treated as dead;
 * - acks cumulatively (every 100 frames, or `ackIntervalMs` after receiving);
 * - reconnects with exponential backoff and jitter, and Resumes with the last
 *   seq it saw, so the gateway replays exactly what is missing; if the session
 *   cannot be resumed it starts a new one and says so (`connected` with
 *   `resumed: false`);
 * - drops any sequenced frame it already delivered: the application sees each
 *   event and each answer once, in order;
 * - resends pending requests with the same id after a reconnect, until answered;
 * - 'auto' transport: WebSocket first, long-poll when WebSocket does not open;
 *   switchTransport() moves the same session between carriers.
 */

import type { CarrierCloseInfo, CarrierKind } from './carriers/carrier.ts';
import type { Carrier } from './carriers/carrier.ts';
import { PollCarrier } from './carriers/poll-carrier.ts';
import { WebSocketCarrier } from './carriers/websocket-carrier.ts';
import { encodeFrame } from './codec.ts';
import { DEFLATE } from './compression.ts';
import { TypedEmitter } from './emitter.ts';
import { type ErrorCode, GatewayError } from './errors.ts';
import { expandImEvent, expandRoster, IM_COMPACT } from './im-compact.ts';
import { expandHeaders } from './mail-headers.ts';
import {
  type Bye,
  type Capabilities,
  type ErrorFrame,
  type Frame,
  isSequenced,
  Kind,
  PROTOCOL_VERSION,
  type Request,
  type SequencedFrame,
  type Value,
  type Welcome,
} from './messages.ts';

export type { CarrierKind } from './carriers/carrier.ts';
export { Carrier, carrierUrl } from './carriers/carrier.ts';
export { PollCarrier } from './carriers/poll-carrier.ts';
export { WebSocketCarrier } from './carriers/websocket-carrier.ts';
export { TypedEmitter } from './emitter.ts';

export interface BackoffOptions {
  /** Delay before the first retry. Default 500. */
  initialMs?: number;
  /** Cap of the delay. Default 30000. */
  maxMs?: number;
  /** Growth per attempt. Default 2. */
  factor?: number;
  /** Fraction of the delay that is random (0 = none, 1 = anywhere in [0, delay]). Default 0.5. */
  jitter?: number;
}

export interface HandsetOptions {
  /** ws://host:port, wss://, http://host:port or https:// (base; carriers derive /v1/ws and /v1/poll). */
  url: string;
  imei: string;
  secret?: string;
  /** A JWT from an earlier Welcome; used when there is no secret. */
  token?: string;
  /** Default 'auto': WebSocket first, long-poll when WebSocket fails to open. */
  transport?: 'ws' | 'poll' | 'auto';
  /** 'auto' falls back to long-poll after 2 WebSocket failures or no Welcome within this. Default 5000. */
  fallbackAfterMs?: number;
  caps?: Capabilities;
  /** Client name and version, e.g. "mmgw-cli/0.1". */
  client?: string;
  /** WebSocket constructor; default globalThis.WebSocket (Node 20 lacks it: pass the `ws` package). */
  WebSocket?: any;
  /** Default globalThis.fetch. */
  fetch?: typeof fetch;
  backoff?: BackoffOptions;
  /** Default timeout of request() and ping(), and of a long-poll POST. Default 30000. */
  requestTimeoutMs?: number;
  /** How long a long-poll GET may be held. Default 25000. */
  pollWaitMs?: number;
  /** An Ack goes out at the latest this long after a sequenced frame arrived. Default 1000. */
  ackIntervalMs?: number;
  /**
   * `mail.sync` without a `compact` field goes on the wire as `compact: true`
   * (field names once, not per message) and resolves with `items` as usual
   * (mail-headers.ts). false: send it as given. Default true.
   */
  compactMailHeaders?: boolean;
  /**
   * Ask for the compact chat forms (SPEC.md §9: Hello caps `encodings`
   * gets `im.compact`, `im.roster` goes out with `compact: true`) and turn
   * them back into the documented events and answers (im-compact.ts), so the
   * application sees the same shapes for fewer bytes. Default true.
   */
  compactIm?: boolean;
  /**
   * Ask for frame compression on WebSocket carriers (SPEC.md §4.4: Hello
   * caps `compression` gets `deflate`): names, ids and JIDs that earlier
   * frames on the same connection carried cost a few bytes each. It costs
   * a few KiB of memory per connection on both sides. Default true.
   */
  compression?: boolean;
  /** Injectable for tests. Default Math.random. */
  random?: () => number;
  /** Injectable for tests. Default Date.now. */
  now?: () => number;
}

export interface HandsetPushEvent {
  name: string;
  body?: Value;
  seq: number;
}

export interface HandsetConnectedEvent {
  sessionId: string;
  transport: CarrierKind;
  resumed: boolean;
}

export interface HandsetDisconnectedEvent {
  code?: string;
  reason: string;
  willReconnect: boolean;
}

export interface HandsetReconnectingEvent {
  /** 1 for the first retry after a loss; reset by every Welcome. */
  attempt: number;
  delayMs: number;
  transport: CarrierKind;
}

export interface HandsetEvents {
  event: HandsetPushEvent;
  connected: HandsetConnectedEvent;
  disconnected: HandsetDisconnectedEvent;
  reconnecting: HandsetReconnectingEvent;
  error: GatewayError;
}

export interface RequestOptions {
  /** Client id; unique per device. Default: generated. */
  id?: string;
  /** Default requestTimeoutMs. The time spent reconnecting counts. */
  timeoutMs?: number;
}

const DEFAULT_BACKOFF: Required<BackoffOptions> = { initialMs: 500, maxMs: 30_000, factor: 2, jitter: 0.5 };
/** Ack at once when this many sequenced frames are unacked (SPEC.md §5). */
const ACK_EVERY_FRAMES = 100;
/** A carrier silent for this many heartbeats is dead. */
const DEAD_AFTER_HEARTBEATS = 2.5;
/** In 'auto', this many WebSocket failures to open in a row switch to long-poll. */
const WS_FAILURES_BEFORE_FALLBACK = 2;

/** Refusals that no retry can fix: the application must act (provision, enable, fix the secret). */
const FATAL_AUTH_CODES = new Set<string>([
  'auth.unknown_device',
  'auth.bad_secret',
  'auth.disabled',
  'auth.bad_token',
  'auth.token_expired',
]);
const RETRYABLE_CODES = new Set<string>([
  'request.timeout',
  'request.unavailable',
  'bus.timeout',
  'bus.no_responders',
  'auth.rate_limited',
  'session.rate_limited',
  'session.draining',
]);

/**
 * Delay before retry number `attempt` (0-based): exponential, capped, with the
 * top `jitter` fraction randomised so that devices dropped together (a node
 * restart) do not come back together.
 */
export function backoffDelay(
  attempt: number,
  options: BackoffOptions = {},
  random: () => number = Math.random,
) {
  const { initialMs, maxMs, factor, jitter } = { ...DEFAULT_BACKOFF, ...options };
  const base = Math.min(maxMs, initialMs * factor ** Math.max(0, attempt));
  const j = Math.min(1, Math.max(0, jitter));
  return Math.round(base * (1 - j * random()));
}

interface PendingRequest {
  frame: Request;
  resolve(body: unknown): void;
  reject(err: GatewayError): void;
  timer: ReturnType<typeof setTimeout>;
}

interface PendingPing {
  sentAt?: number;
  resolve(rttMs: number): void;
  reject(err: GatewayError): void;
  timer: ReturnType<typeof setTimeout>;
}

interface SwitchWaiter {
  kind: CarrierKind;
  resolve(): void;
  reject(err: GatewayError): void;
}

/** The carrier being opened to move a live session (switchTransport). */
interface Candidate {
  carrier: Carrier;
  timer: ReturnType<typeof setTimeout>;
  /** Restored when the switch fails: a failed switch leaves things as they were. */
  previousMode: 'ws' | 'poll' | 'auto';
}

export class Handset {
  readonly #options: HandsetOptions;
  readonly #emitter = new TypedEmitter<HandsetEvents>();
  readonly #now: () => number;
  readonly #random: () => number;
  readonly #requestTimeoutMs: number;
  readonly #ackIntervalMs: number;
  readonly #fallbackAfterMs: number;

  #mode: 'ws' | 'poll' | 'auto';
  /** In 'auto': the carrier to try next. */
  #autoKind: CarrierKind = 'ws';
  #wsFailures = 0;

  #closed = false;
  #carrier?: Carrier;
  /** The current carrier got its Welcome (otherwise it is still an attempt). */
  #welcomed = false;
  #candidate?: Candidate;
  #switchWaiters: SwitchWaiter[] = [];
  /** Code of the fatal Error or Bye the current carrier received before closing. */
  #closeCode?: string;

  #sessionId?: string;
  #resumeToken?: string;
  #token?: string;
  #welcome?: Welcome;
  #lastSeq = 0;
  #ackedSeq = 0;
  #lastRxAt = 0;

  #attempt = 0;
  #reconnectTimer?: ReturnType<typeof setTimeout>;
  #attemptTimer?: ReturnType<typeof setTimeout>;
  #heartbeatTimer?: ReturnType<typeof setInterval>;
  #ackTimer?: ReturnType<typeof setTimeout>;

  readonly #pending = new Map<string, PendingRequest>();
  readonly #pings = new Map<number, PendingPing>();
  #nonce = 0;
  readonly #idPrefix: string;
  #idCounter = 0;

  #connect?: Promise<Welcome>;
  #connectResolve?: (welcome: Welcome) => void;
  #connectReject?: (err: GatewayError) => void;

  constructor(options: HandsetOptions) {
    if (typeof options?.url !== 'string' || options.url === '') {
      throw new GatewayError('config.invalid', 'url is required', { field: 'url' });
    }
    if (typeof options.imei !== 'string' || options.imei === '') {
      throw new GatewayError('config.invalid', 'imei is required', { field: 'imei' });
    }
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.#random = options.random ?? Math.random;
    this.#requestTimeoutMs = options.requestTimeoutMs ?? 30_000;
    this.#ackIntervalMs = options.ackIntervalMs ?? 1_000;
    this.#fallbackAfterMs = options.fallbackAfterMs ?? 5_000;
    this.#mode = options.transport ?? 'auto';
    this.#token = options.token;
    // Request ids must be unique per device across app restarts: a random
    // prefix per Handset instance, then a counter.
    this.#idPrefix = Math.floor(this.#random() * 36 ** 6)
      .toString(36)
      .padStart(6, '0');
  }

  get sessionId(): string | undefined {
    return this.#sessionId;
  }

  /** The carrier of the live session; undefined while disconnected. */
  get transport(): CarrierKind | undefined {
    return this.#welcomed ? this.#carrier?.kind : undefined;
  }

  /** The highest seq delivered to the application in this session. */
  get lastSeq(): number {
    return this.#lastSeq;
  }

  /** The last Welcome (heartbeat, limits, token). */
  get welcome(): Welcome | undefined {
    return this.#welcome;
  }

  on<K extends keyof HandsetEvents>(name: K, fn: (e: HandsetEvents[K]) => void): () => void {
    return this.#emitter.on(name, fn);
  }

  /**
   * Opens the session. Resolves on the first Welcome; keeps retrying carrier
   * failures with backoff; rejects with GatewayError on a refusal no retry can
   * fix (unknown device, bad secret, disabled) or when closed first.
   */
  connect(): Promise<Welcome> {
    if (this.#closed) return Promise.reject(new GatewayError('session.closed', 'the handset is closed'));
    if (this.#connect !== undefined) return this.#connect;
    this.#connect = new Promise<Welcome>((resolve, reject) => {
      this.#connectResolve = resolve;
      this.#connectReject = reject;
    });
    this.#openCarrier();
    return this.#connect;
  }

  /**
   * Sends a request and resolves with the response body. Until answered it is
   * resent with the same id after every reconnect (the gateway answers a
   * repeated id from memory). Rejects with the GatewayError of an Error frame,
   * 'request.timeout' after timeoutMs, or 'session.closed'.
   */
  request<T = Value>(method: string, body?: Value, opts: RequestOptions = {}): Promise<T> {
    if (this.#closed) return Promise.reject(new GatewayError('session.closed', 'the handset is closed'));
    if (typeof method !== 'string' || method === '') {
      return Promise.reject(new GatewayError('request.bad_input', 'method is required', { field: 'method' }));
    }
    const id = opts.id ?? `${this.#idPrefix}.${(++this.#idCounter).toString(36)}`;
    if (this.#pending.has(id)) {
      return Promise.reject(
        new GatewayError('request.duplicate', `request ${id} is still pending`, { field: 'id' }),
      );
    }
    const frame: Request = { kind: Kind.Request, id, method };
    if (body !== undefined) frame.body = body;
    // The compact header table on the wire, `items` for the application: same data, fewer bytes.
    const expand =
      method === 'mail.sync' &&
      this.#options.compactMailHeaders !== false &&
      isRecord(body) &&
      body.compact === undefined;
    if (expand) frame.body = { ...(body as Record<string, Value>), compact: true };
    const im = this.#options.compactIm !== false && isRecord(body) ? method : undefined;
    if (im === 'im.roster' && (body as Record<string, Value>).compact === undefined) {
      frame.body = { ...(body as Record<string, Value>), compact: true };
    }
    // Encode once up front: a body the codec cannot carry, or one over the
    // gateway's frame limit, fails here rather than closing the carrier.
    try {
      const limit = this.#welcome?.maxFrameBytes;
      encodeFrame(frame, limit !== undefined && limit > 0 ? { maxFrameBytes: limit } : undefined);
    } catch (err) {
      const code = err instanceof GatewayError ? err.code : undefined;
      if (code === 'protocol.frame_too_large' || code === 'protocol.limit') return Promise.reject(err);
      const message = err instanceof Error ? err.message : String(err);
      return Promise.reject(
        new GatewayError('request.bad_input', `the request cannot be encoded: ${message}`, {
          field: 'body',
          cause: err,
        }),
      );
    }
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new GatewayError('request.timeout', `no answer to ${method} (${id})`, { retryable: true }));
      }, opts.timeoutMs ?? this.#requestTimeoutMs);
      const settle = expand
        ? (answer: unknown) => resolve((isRecord(answer) ? expandHeaders(answer) : answer) as T)
        : im === 'im.roster'
          ? (answer: unknown) => resolve((isRecord(answer) ? expandRoster(answer) : answer) as T)
          : im === 'im.send'
            ? // A gateway that knows we expand answers im.send with nothing: we know what it would say.
              (answer: unknown) => {
                const b = body as Record<string, Value>;
                resolve((answer ?? { account: b.account ?? null, clientId: b.clientId ?? null }) as T);
              }
            : (resolve as (body: unknown) => void);
      this.#pending.set(id, { frame, resolve: settle, reject, timer });
      if (this.#welcomed) this.#carrier?.send(frame);
    });
  }

  /** Round trip of a Ping in milliseconds; waits for a connection if there is none. */
  ping(): Promise<number> {
    if (this.#closed) return Promise.reject(new GatewayError('session.closed', 'the handset is closed'));
    const nonce = this.#nextNonce();
    return new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pings.delete(nonce);
        reject(new GatewayError('request.timeout', 'no Pong', { retryable: true }));
      }, this.#requestTimeoutMs);
      const entry: PendingPing = { resolve, reject, timer };
      this.#pings.set(nonce, entry);
      if (this.#welcomed) this.#sendPing(nonce, entry);
    });
  }

  /**
   * Moves the session to the other carrier (Resume on it; the gateway sends
   * the old one Bye session.moved). Also pins the transport: no more
   * automatic fallback.
   */
  switchTransport(kind: 'ws' | 'poll'): Promise<void> {
    if (this.#closed) return Promise.reject(new GatewayError('session.closed', 'the handset is closed'));
    if (kind !== 'ws' && kind !== 'poll') {
      return Promise.reject(new GatewayError('request.bad_input', `unknown transport ${String(kind)}`));
    }
    const previousMode = this.#mode;
    this.#mode = kind;
    if (this.#welcomed && this.#carrier?.kind === kind) return Promise.resolve();
    const done = new Promise<void>((resolve, reject) => this.#switchWaiters.push({ kind, resolve, reject }));
    if (this.#welcomed && this.#sessionId !== undefined) {
      this.#openCandidate(kind, previousMode);
    } else if (
      this.#connect !== undefined &&
      (this.#reconnectTimer !== undefined || this.#carrier === undefined || this.#carrier.kind !== kind)
    ) {
      // Not connected: stop waiting, or trying on the other kind; try this one now.
      this.#abandonAttempt();
      this.#openCarrier();
    }
    return done;
  }

  /** Ends the session on this side: acks what was received, closes the carrier, rejects what is pending. */
  async close(): Promise<void> {
    if (this.#closed) return;
    const wasConnected = this.#welcomed;
    this.#closed = true;
    const err = new GatewayError('session.closed', 'the handset was closed');
    this.#stopTimers();
    if (this.#welcomed && this.#lastSeq > this.#ackedSeq) this.#sendAck();
    // Log out: the gateway ends the session now rather than keeping it for a Resume that
    // cannot come (a closed Handset forgets its session).
    if (this.#welcomed)
      this.#carrier?.send({ kind: Kind.Bye, code: 'session.logout', message: 'logout', resumable: false });
    const carrier = this.#carrier;
    const candidate = this.#candidate;
    this.#carrier = undefined;
    this.#candidate = undefined;
    this.#welcomed = false;
    this.#rejectAll(err);
    if (wasConnected)
      this.#emitter.emit('disconnected', { code: 'session.closed', reason: 'closed', willReconnect: false });
    await Promise.all([carrier?.close(), candidate?.carrier.close()]);
  }

  // ---- carriers -----------------------------------------------------------

  #nextKind(): CarrierKind {
    return this.#mode === 'auto' ? this.#autoKind : this.#mode;
  }

  #makeCarrier(
    kind: CarrierKind,
    onFrame: (c: Carrier, f: Frame) => void,
    onClose: (c: Carrier, i: CarrierCloseInfo) => void,
  ) {
    const options = {
      url: this.#options.url,
      WebSocket: this.#options.WebSocket,
      fetch: this.#options.fetch,
      requestTimeoutMs: this.#requestTimeoutMs,
      pollWaitMs: this.#options.pollWaitMs ?? 25_000,
      lastSeq: () => this.#lastSeq,
    };
    let carrier: Carrier;
    const handlers = {
      onFrame: (frame: Frame) => onFrame(carrier, frame),
      onClose: (info: CarrierCloseInfo) => onClose(carrier, info),
      onAck: (seq: number) => {
        if (carrier === this.#carrier && seq > this.#ackedSeq) {
          this.#ackedSeq = seq;
          if (this.#ackedSeq >= this.#lastSeq) this.#clearAckTimer();
        }
      },
    };
    carrier = kind === 'ws' ? new WebSocketCarrier(options, handlers) : new PollCarrier(options, handlers);
    return carrier;
  }

  /** The first frame on a new carrier: Resume if there is a session, Hello otherwise. */
  #firstFrame() {
    if (this.#sessionId !== undefined && this.#resumeToken !== undefined) {
      // A Resume acks everything up to lastSeq (SPEC.md §5).
      this.#ackedSeq = this.#lastSeq;
      this.#clearAckTimer();
      return {
        kind: Kind.Resume as const,
        version: PROTOCOL_VERSION,
        sessionId: this.#sessionId,
        resumeToken: this.#resumeToken,
        lastSeq: this.#lastSeq,
      };
    }
    const hello = { kind: Kind.Hello as const, version: PROTOCOL_VERSION, imei: this.#options.imei } as {
      kind: Kind.Hello;
      version: number;
      imei: string;
      secret?: string;
      token?: string;
      client?: string;
      caps?: Capabilities;
    };
    if (this.#options.secret !== undefined) hello.secret = this.#options.secret;
    else if (this.#token !== undefined) hello.token = this.#token;
    if (this.#options.client !== undefined) hello.client = this.#options.client;
    if (this.#options.caps !== undefined) hello.caps = this.#options.caps;
    if (this.#options.compactIm !== false) {
      const encodings = hello.caps?.encodings ?? [];
      if (!encodings.includes(IM_COMPACT))
        hello.caps = { ...hello.caps, encodings: [...encodings, IM_COMPACT] };
    }
    if (this.#options.compression !== false) {
      const schemes = hello.caps?.compression ?? [];
      if (!schemes.includes(DEFLATE)) hello.caps = { ...hello.caps, compression: [...schemes, DEFLATE] };
    }
    return hello;
  }

  #openCarrier(): void {
    if (this.#closed) return;
    this.#clearReconnectTimer();
    const kind = this.#nextKind();
    const carrier = this.#makeCarrier(
      kind,
      (c, f) => this.#onFrame(c, f),
      (c, i) => this.#onCarrierClose(c, i),
    );
    this.#carrier = carrier;
    this.#welcomed = false;
    this.#closeCode = undefined;
    // A WebSocket that a proxy lets open but never answers through counts as failed in 'auto'.
    const handshakeMs =
      kind === 'ws' && this.#mode === 'auto'
        ? this.#fallbackAfterMs
        : Math.max(this.#fallbackAfterMs, this.#requestTimeoutMs);
    this.#attemptTimer = setTimeout(() => this.#onAttemptTimeout(carrier), handshakeMs);
    carrier.start(this.#firstFrame());
  }

  #onAttemptTimeout(carrier: Carrier): void {
    if (carrier !== this.#carrier || this.#welcomed) return;
    let delay: number | undefined;
    if (carrier.kind === 'ws' && this.#mode === 'auto') {
      this.#autoKind = 'poll';
      this.#wsFailures = 0;
      delay = 0;
    }
    this.#loseCarrier(carrier, `no Welcome within ${this.#fallbackAfterMs} ms`, undefined, delay);
  }

  /** Cancels a scheduled retry or an attempt that has not been welcomed yet. */
  #abandonAttempt(): void {
    this.#clearReconnectTimer();
    if (this.#carrier !== undefined && !this.#welcomed) {
      void this.#carrier.close();
      this.#carrier = undefined;
      this.#clearAttemptTimer();
    }
  }

  #openCandidate(kind: CarrierKind, previousMode: 'ws' | 'poll' | 'auto'): void {
    if (this.#candidate !== undefined) {
      if (this.#candidate.carrier.kind === kind) return;
      previousMode = this.#candidate.previousMode;
      this.#dropCandidate(new GatewayError('session.moved', 'another switch was requested'), false);
    }
    const carrier = this.#makeCarrier(
      kind,
      (c, f) => this.#onCandidateFrame(c, f),
      (c, i) => {
        if (c !== this.#candidate?.carrier) return;
        this.#dropCandidate(
          i.error ??
            new GatewayError('request.unavailable', `cannot switch to ${kind}: ${i.reason}`, {
              retryable: true,
            }),
        );
      },
    );
    const timer = setTimeout(() => {
      if (carrier !== this.#candidate?.carrier) return;
      this.#dropCandidate(new GatewayError('request.timeout', `no Welcome on ${kind}`, { retryable: true }));
    }, this.#requestTimeoutMs);
    this.#candidate = { carrier, timer, previousMode };
    carrier.start(this.#firstFrame());
  }

  #onCandidateFrame(carrier: Carrier, frame: Frame): void {
    if (carrier === this.#carrier) {
      this.#onFrame(carrier, frame);
      return;
    }
    if (carrier !== this.#candidate?.carrier) return;
    if (frame.kind === Kind.Welcome) {
      // Promote: the gateway moved the session here; the old carrier gets Bye session.moved.
      clearTimeout(this.#candidate.timer);
      this.#candidate = undefined;
      const old = this.#carrier;
      this.#stopCarrierTimers();
      this.#clearReconnectTimer();
      this.#carrier = carrier;
      this.#welcomed = false;
      this.#closeCode = undefined;
      if (old !== undefined) void old.close();
      this.#onFrame(carrier, frame);
      return;
    }
    if (frame.kind === Kind.Error || frame.kind === Kind.Bye) this.#dropCandidate(errorFromFrame(frame));
  }

  #dropCandidate(err: GatewayError, restoreMode = true): void {
    const candidate = this.#candidate;
    if (candidate === undefined) return;
    this.#candidate = undefined;
    if (restoreMode) this.#mode = candidate.previousMode;
    clearTimeout(candidate.timer);
    void candidate.carrier.close();
    const kind = candidate.carrier.kind;
    const waiters = this.#switchWaiters.filter((w) => w.kind === kind);
    this.#switchWaiters = this.#switchWaiters.filter((w) => w.kind !== kind);
    for (const w of waiters) w.reject(err);
    // The old carrier may already have left for the move (Bye session.moved).
    if (this.#carrier === undefined) this.#scheduleReconnect();
  }

  #onCarrierClose(carrier: Carrier, info: CarrierCloseInfo): void {
    if (carrier !== this.#carrier || this.#closed) return;
    let delay: number | undefined;
    if (!this.#welcomed && this.#mode === 'auto' && info.failedToOpen) {
      if (carrier.kind === 'ws') {
        if (++this.#wsFailures >= WS_FAILURES_BEFORE_FALLBACK) {
          this.#autoKind = 'poll';
          this.#wsFailures = 0;
          delay = 0;
        }
      } else {
        // Long-poll does not reach the gateway either: probably the gateway
        // (or the network) is down, not WebSocket. Try WebSocket again next.
        this.#autoKind = 'ws';
      }
    }
    if (info.error !== undefined && !this.#welcomed && info.error.code === 'config.invalid') {
      this.#fail(info.error);
      return;
    }
    this.#loseCarrier(carrier, info.reason, this.#closeCode ?? info.error?.code, delay);
  }

  /** The current carrier is gone: tell the application, retry after a backoff (or `delayMs`). */
  #loseCarrier(carrier: Carrier, reason: string, code?: string, delayMs?: number): void {
    if (carrier !== this.#carrier) return;
    const wasWelcomed = this.#welcomed;
    this.#stopCarrierTimers();
    this.#carrier = undefined;
    this.#welcomed = false;
    void carrier.close();
    if (wasWelcomed) {
      const event: HandsetDisconnectedEvent = { reason, willReconnect: !this.#closed };
      if (code !== undefined) event.code = code;
      this.#emitter.emit('disconnected', event);
    }
    this.#scheduleReconnect(delayMs);
  }

  #scheduleReconnect(delayMs?: number): void {
    if (this.#closed || this.#carrier !== undefined || this.#reconnectTimer !== undefined) return;
    const delay = delayMs ?? backoffDelay(this.#attempt, this.#options.backoff ?? {}, this.#random);
    this.#attempt++;
    this.#emitter.emit('reconnecting', {
      attempt: this.#attempt,
      delayMs: delay,
      transport: this.#nextKind(),
    });
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = undefined;
      this.#openCarrier();
    }, delay);
  }

  /** A refusal no retry fixes: stop, reject everything, tell the application. */
  #fail(err: GatewayError, emitError = true): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#stopTimers();
    const carrier = this.#carrier;
    const candidate = this.#candidate;
    this.#carrier = undefined;
    this.#candidate = undefined;
    this.#welcomed = false;
    void carrier?.close();
    void candidate?.carrier.close();
    if (emitError) this.#emitter.emit('error', err);
    this.#emitter.emit('disconnected', { code: err.code, reason: err.message, willReconnect: false });
    this.#rejectAll(err);
  }

  #rejectAll(err: GatewayError): void {
    this.#settleConnect(err);
    for (const [id, p] of this.#pending) {
      clearTimeout(p.timer);
      this.#pending.delete(id);
      p.reject(err);
    }
    for (const [nonce, p] of this.#pings) {
      clearTimeout(p.timer);
      this.#pings.delete(nonce);
      p.reject(err);
    }
    const waiters = this.#switchWaiters;
    this.#switchWaiters = [];
    for (const w of waiters) w.reject(err);
  }

  #settleConnect(result: Welcome | GatewayError): void {
    const resolve = this.#connectResolve;
    const reject = this.#connectReject;
    if (resolve === undefined || reject === undefined) return;
    this.#connectResolve = undefined;
    this.#connectReject = undefined;
    if (result instanceof GatewayError) reject(result);
    else resolve(result);
  }

  // ---- frames -------------------------------------------------------------

  #onFrame(carrier: Carrier, frame: Frame): void {
    if (carrier !== this.#carrier || this.#closed) return;
    this.#lastRxAt = this.#now();
    if (isSequenced(frame)) {
      this.#onSequenced(frame);
      return;
    }
    switch (frame.kind) {
      case Kind.Welcome:
        this.#onWelcome(carrier, frame);
        return;
      case Kind.Ping:
        carrier.send({ kind: Kind.Pong, nonce: frame.nonce });
        return;
      case Kind.Pong: {
        const ping = this.#pings.get(frame.nonce);
        if (ping?.sentAt === undefined) return;
        this.#pings.delete(frame.nonce);
        clearTimeout(ping.timer);
        ping.resolve(Math.max(0, this.#now() - ping.sentAt));
        return;
      }
      case Kind.Error:
        this.#onSessionError(carrier, frame);
        return;
      case Kind.Bye:
        this.#onBye(carrier, frame);
        return;
      default:
        // Hello, Resume, Request, Ack only travel device → gateway; ignore.
        return;
    }
  }

  #onWelcome(carrier: Carrier, welcome: Welcome): void {
    this.#clearAttemptTimer();
    const resumed = welcome.resumed && welcome.sessionId === this.#sessionId;
    if (!resumed) {
      // A new session numbers its frames from 1 again.
      this.#lastSeq = 0;
      this.#ackedSeq = 0;
      this.#clearAckTimer();
    }
    this.#sessionId = welcome.sessionId;
    this.#resumeToken = welcome.resumeToken;
    if (welcome.token) this.#token = welcome.token;
    this.#welcome = welcome;
    this.#welcomed = true;
    this.#attempt = 0;
    this.#wsFailures = 0;
    this.#closeCode = undefined;
    this.#startHeartbeat(carrier, welcome.heartbeatMs);
    this.#settleConnect(welcome);
    this.#emitter.emit('connected', { sessionId: welcome.sessionId, transport: carrier.kind, resumed });
    if (carrier !== this.#carrier) return; // a listener closed or switched meanwhile
    for (const p of this.#pending.values()) carrier.send(p.frame);
    for (const [nonce, p] of this.#pings) this.#sendPing(nonce, p);
    const waiters = this.#switchWaiters.filter((w) => w.kind === carrier.kind);
    this.#switchWaiters = this.#switchWaiters.filter((w) => w.kind !== carrier.kind);
    for (const w of waiters) w.resolve();
  }

  #onSequenced(frame: SequencedFrame): void {
    if (frame.seq <= this.#lastSeq) {
      // Already delivered (a replay after resume, a repeated GET): drop it,
      // but ack again so that the gateway stops sending it.
      this.#scheduleAck(true);
      return;
    }
    this.#lastSeq = frame.seq;
    switch (frame.kind) {
      case Kind.Event: {
        const { name, body } = expandImEvent(frame.name, frame.body);
        const event: HandsetPushEvent = { name, seq: frame.seq };
        if (body !== undefined) event.body = body;
        // Through the microtask queue, like the answers to requests (promise
        // reactions): an application sees answers and events in seq order.
        queueMicrotask(() => this.#emitter.emit('event', event));
        break;
      }
      case Kind.Response: {
        const p = this.#pending.get(frame.id);
        if (p !== undefined) {
          this.#pending.delete(frame.id);
          clearTimeout(p.timer);
          p.resolve(frame.body);
        }
        break;
      }
      case Kind.Error: {
        const p = frame.id === undefined ? undefined : this.#pending.get(frame.id);
        if (p !== undefined && frame.id !== undefined) {
          this.#pending.delete(frame.id);
          clearTimeout(p.timer);
          p.reject(errorFromFrame(frame));
        } else if (frame.id === undefined) {
          this.#emitter.emit('error', errorFromFrame(frame));
        }
        break;
      }
    }
    this.#scheduleAck(false);
  }

  #onSessionError(carrier: Carrier, frame: ErrorFrame): void {
    const err = errorFromFrame(frame);
    if (frame.id !== undefined) {
      // An unsequenced answer to a request (e.g. request.duplicate is not stored for replay).
      const p = this.#pending.get(frame.id);
      if (p !== undefined && frame.code !== 'request.duplicate') {
        this.#pending.delete(frame.id);
        clearTimeout(p.timer);
        p.reject(err);
      }
      if (!frame.fatal) return;
    }
    if (!frame.fatal) {
      this.#emitter.emit('error', err);
      return;
    }
    this.#closeCode = frame.code;
    if (FATAL_AUTH_CODES.has(frame.code)) {
      this.#fail(err);
      return;
    }
    if (frame.code === 'auth.resume_failed') {
      // The session is gone (expired, or the gateway restarted): start a new one
      // at once; the application learns it from 'connected' {resumed: false}.
      this.#forgetSession();
      this.#loseCarrier(carrier, err.message, frame.code, 0);
      return;
    }
    this.#emitter.emit('error', err);
    this.#loseCarrier(carrier, err.message, frame.code, frame.retryAfterMs ?? undefined);
  }

  #onBye(carrier: Carrier, bye: Bye): void {
    this.#closeCode = bye.code;
    if (bye.code === 'session.moved' && this.#candidate !== undefined) {
      // Our own switch: the gateway may tell the old carrier before the new
      // one hears its Welcome. Let the old one go quietly and wait.
      this.#stopCarrierTimers();
      this.#carrier = undefined;
      this.#welcomed = false;
      void carrier.close();
      return;
    }
    if (FATAL_AUTH_CODES.has(bye.code)) {
      // Disabled, removed or re-keyed by the operator while connected: a new Hello would be refused too.
      this.#fail(errorFromFrame(bye));
      return;
    }
    if (bye.code === 'session.replaced') {
      // A newer Hello of this device took over: fighting back would only ping-pong it.
      this.#fail(errorFromFrame(bye), false);
      return;
    }
    // session.moved without a switch of ours: only a Resume with our resume
    // token moves a session, so it was one of our own carriers (a reconnect
    // racing a switch); resuming again converges on the newest.

    if (!bye.resumable) this.#forgetSession();
    this.#loseCarrier(carrier, bye.message || bye.code, bye.code, bye.reconnectAfterMs ?? undefined);
  }

  #forgetSession(): void {
    this.#sessionId = undefined;
    this.#resumeToken = undefined;
  }

  // ---- acks and heartbeat --------------------------------------------------

  #scheduleAck(duplicate: boolean): void {
    if (!this.#welcomed) return;
    if (this.#lastSeq - this.#ackedSeq >= ACK_EVERY_FRAMES) {
      this.#sendAck();
      return;
    }
    if (this.#ackTimer !== undefined) return;
    if (!duplicate && this.#lastSeq <= this.#ackedSeq) return;
    this.#ackTimer = setTimeout(() => {
      this.#ackTimer = undefined;
      this.#sendAck(duplicate);
    }, this.#ackIntervalMs);
  }

  #sendAck(force = false): void {
    this.#clearAckTimer();
    if (!this.#welcomed || this.#carrier === undefined) return;
    if (this.#lastSeq <= this.#ackedSeq && !(force && this.#lastSeq > 0)) return;
    this.#ackedSeq = this.#lastSeq;
    this.#carrier.send({ kind: Kind.Ack, seq: this.#lastSeq });
  }

  #startHeartbeat(carrier: Carrier, heartbeatMs: number): void {
    this.#clearHeartbeat();
    this.#lastRxAt = this.#now();
    if (!(heartbeatMs > 0)) return;
    this.#heartbeatTimer = setInterval(() => {
      if (carrier !== this.#carrier) return;
      if (this.#now() - this.#lastRxAt > DEAD_AFTER_HEARTBEATS * heartbeatMs) {
        this.#loseCarrier(
          carrier,
          `nothing heard for ${DEAD_AFTER_HEARTBEATS}× ${heartbeatMs} ms`,
          'session.heartbeat_timeout',
        );
        return;
      }
      carrier.send({ kind: Kind.Ping, nonce: this.#nextNonce() });
    }, heartbeatMs);
  }

  #sendPing(nonce: number, entry: PendingPing): void {
    entry.sentAt = this.#now();
    this.#carrier?.send({ kind: Kind.Ping, nonce });
  }

  #nextNonce(): number {
    this.#nonce = this.#nonce >= 0xffffffff ? 1 : this.#nonce + 1;
    return this.#nonce;
  }

  // ---- timers -------------------------------------------------------------

  #clearAckTimer(): void {
    if (this.#ackTimer !== undefined) clearTimeout(this.#ackTimer);
    this.#ackTimer = undefined;
  }

  #clearHeartbeat(): void {
    if (this.#heartbeatTimer !== undefined) clearInterval(this.#heartbeatTimer);
    this.#heartbeatTimer = undefined;
  }

  #clearAttemptTimer(): void {
    if (this.#attemptTimer !== undefined) clearTimeout(this.#attemptTimer);
    this.#attemptTimer = undefined;
  }

  #clearReconnectTimer(): void {
    if (this.#reconnectTimer !== undefined) clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = undefined;
  }

  #stopCarrierTimers(): void {
    this.#clearAckTimer();
    this.#clearHeartbeat();
    this.#clearAttemptTimer();
  }

  #stopTimers(): void {
    this.#stopCarrierTimers();
    this.#clearReconnectTimer();
    if (this.#candidate !== undefined) clearTimeout(this.#candidate.timer);
  }
}

/** Turns an Error or Bye frame into the GatewayError the application sees. */
export function errorFromFrame(frame: ErrorFrame | Bye): GatewayError {
  const retryAfterMs = frame.kind === Kind.Error ? frame.retryAfterMs : frame.reconnectAfterMs;
  // The gateway may be newer than this SDK and send a code we do not list:
  // keep it as is rather than hiding it behind 'internal'.
  const code = frame.code as ErrorCode;
  const options: { retryable: boolean; retryAfterMs?: number } = {
    retryable: RETRYABLE_CODES.has(frame.code) || retryAfterMs !== undefined,
  };
  if (retryAfterMs !== undefined) options.retryAfterMs = retryAfterMs;
  return new GatewayError(code, frame.message || undefined, options);
}

function isRecord(v: unknown): v is Record<string, Value> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

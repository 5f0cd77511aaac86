/**
 * The session state machine of the Handset SDK (SPEC.md §4, §5), without
 * I/O: what the application asks for, the frames and closes of carriers and
 * the firing of timers go in through step(); what to do comes out as effects
 * (open or close a carrier, send a frame, schedule or cancel a timer, emit an
 * event, settle a call). The clock and the random source are injected, so the
 * same inputs always give the same effects: handset.ts is the shell that owns
 * the real carriers and timers, and the unit tests and the fuzzer drive this
 * directly.
 *
 * What it does for the application:
 * - Hello (IMEI + secret, or a token), or Resume with the last seq it saw, as
 *   the first frame of every carrier;
 * - Ping every `heartbeatMs`; a carrier silent for 2× that is dead (a frozen
 *   gateway keeps TCP open and answers nothing), and the next attempt goes to
 *   the next URL;
 * - cumulative acks, at once every 100 frames, else `ackIntervalMs` after a
 *   sequenced frame;
 * - reconnects with exponential backoff and jitter; a session that cannot be
 *   resumed is replaced by a new one (`connected` with `resumed: false`);
 * - several gateway URLs (edges without a load balancer): an attempt that
 *   fails to open, gets no Welcome in time, or a carrier that goes silent or
 *   is told the edge drains moves on to the next URL; a carrier that simply
 *   drops is retried on its URL first (the last good one). The backoff grows
 *   per round over all URLs, so a second edge is tried without a long wait;
 * - a Resume answered `session.busy` for `resumeBusyLimitMs` in a row (the
 *   edge holding the session is frozen) gives the session up for a new one;
 * - drops a sequenced frame it already delivered, so each event and answer
 *   reaches the application once, in order;
 * - resends pending requests with the same id on every new carrier;
 * - 'auto': WebSocket first, long-poll when WebSocket does not open;
 *   switch moves the live session to the other carrier kind.
 *
 * Invariants (testing/handset-session-driver.ts checks them on every step of
 * the unit tests and the fuzzer): sequenced frames are delivered at most once
 * and in seq order; the acked seq never goes backwards within a session;
 * every call is settled exactly once; a started session always has a carrier
 * open or a retry scheduled; once closed, only cleanup comes out (cancel,
 * close, settling calls).
 *
 * A step never calls out except into the plugins (pure by contract), so
 * nothing can re-enter it: the shell queues inputs that arrive while it
 * performs a step's effects.
 */

import { backoffDelay } from './backoff.ts';
import type { CarrierCloseInfo, CarrierKind } from './carriers/carrier.ts';
import { encodeFrame } from './codec.ts';
import { DEFLATE } from './compression.ts';
import { type ErrorCode, GatewayError, isRetryableCode, toGatewayError } from './errors.ts';
import type { HandsetPlugin, RequestRewrite } from './handset-plugin.ts';
import type {
  EmitEffect,
  HandsetDisconnectedEvent,
  HandsetEvents,
  HandsetPushEvent,
  HandsetSessionOptions,
  SessionEffect,
  SessionInput,
  TimerKey,
  TransportMode,
} from './handset-types.ts';
import {
  type Bye,
  type Capabilities,
  type ErrorFrame,
  type Frame,
  type Hello,
  isSequenced,
  Kind,
  PROTOCOL_VERSION,
  type Request,
  type Resume,
  type SequencedFrame,
  type Value,
  type Welcome,
} from './messages.ts';

/** Ack at once when this many sequenced frames are unacked (SPEC.md §5). */
const ACK_EVERY_FRAMES = 100;
/**
 * Sequenced frames kept that arrived ahead of a gap (SPEC.md §4.2: answers to
 * concurrent long-poll requests may arrive out of order). As many as the
 * gateway keeps for replay by default: more means the gap will not fill.
 */
const MAX_FRAMES_AHEAD = 1000;
/** A gap that has not filled after this long is given up: the session resumes from before it. */
const GAP_PATIENCE_MS = 5000;
/**
 * A carrier silent for this many heartbeats is dead. The SDK pings every
 * heartbeat and the gateway answers at once, so a live carrier is never
 * silent for much more than one; the gateway gives the device 2.5 (SPEC.md §5).
 */
const DEAD_AFTER_HEARTBEATS = 2;
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
/**
 * Codes whose operation may be retried: the registry's, plus the bus codes
 * older gateways sent to devices (a Resume that hit a busy holder answered
 * bus.timeout before session.busy existed).
 */
function retryableCode(code: string): boolean {
  return isRetryableCode(code) || code === 'bus.timeout' || code === 'bus.no_responders';
}

/** Turns an Error or Bye frame into the GatewayError the application sees. */
export function errorFromFrame(frame: ErrorFrame | Bye): GatewayError {
  const retryAfterMs = frame.kind === Kind.Error ? frame.retryAfterMs : frame.reconnectAfterMs;
  // The gateway may be newer than this SDK and send a code we do not list:
  // keep it as is rather than hiding it behind 'internal'.
  const code = frame.code as ErrorCode;
  const options: { retryable: boolean; retryAfterMs?: number } = {
    retryable: retryableCode(frame.code) || retryAfterMs !== undefined,
  };
  if (retryAfterMs !== undefined) options.retryAfterMs = retryAfterMs;
  return new GatewayError(code, frame.message || undefined, options);
}

interface PendingRequest {
  type: 'request';
  call: number;
  frame: Request;
  /** The plugins' way back from the wire form of the answer. */
  expand?: (answer: Value | undefined) => Value | undefined;
}

interface PendingPing {
  type: 'ping';
  call: number;
  nonce: number;
  /** Unset until the Ping went out on a live carrier. */
  sentAt?: number;
}

interface CarrierRef {
  id: number;
  kind: CarrierKind;
  /** Index into the gateway URLs. */
  url: number;
}

/** The carrier being opened to move a live session (switch). */
interface Candidate extends CarrierRef {
  /** Restored when the switch fails: a failed switch leaves things as they were. */
  previousMode: TransportMode;
}

const closedError = () => new GatewayError('session.closed', 'the handset is closed');

export class HandsetSession {
  readonly #settings: HandsetSessionOptions;
  readonly #now: () => number;
  readonly #random: () => number;
  readonly #requestTimeoutMs: number;
  readonly #ackIntervalMs: number;
  readonly #fallbackAfterMs: number;
  readonly #resumeBusyLimitMs: number;
  readonly #helloCaps: Capabilities | undefined;
  readonly #requestPlugins: HandsetPlugin[];
  readonly #eventPlugins: HandsetPlugin[];
  readonly #urls: readonly string[];
  /** The URL the next carrier opens to. */
  #urlIndex = 0;

  #mode: TransportMode;
  /** In 'auto': the carrier to try next. */
  #autoKind: CarrierKind = 'ws';
  #wsFailures = 0;

  #closed = false;
  /** connect() was called: carriers are opened from then on. */
  #started = false;
  #connectCalls: number[] = [];
  #connectResult?: Welcome;
  #nextCarrierId = 1;
  #carrier?: CarrierRef;
  /** The current carrier got its Welcome (otherwise it is still an attempt). */
  #welcomed = false;
  #candidate?: Candidate;
  #switchWaiters: Array<{ kind: CarrierKind; call: number }> = [];
  /** Code of the fatal Error or Bye the current carrier received before closing. */
  #closeCode?: string;

  #sessionId?: string;
  #resumeToken?: string;
  /** When Resumes of this session started being answered session.busy (none welcomed since). */
  #busySince?: number;
  #token?: string;
  #welcome?: Welcome;
  /** The last seq delivered: every frame up to it reached the application, in order. */
  #lastSeq = 0;
  /** Frames received beyond a gap, by seq, delivered once the gap fills. */
  readonly #ahead = new Map<number, SequencedFrame>();
  #ackedSeq = 0;
  #lastRxAt = 0;
  #heartbeatMs = 0;
  /** When the next heartbeat Ping is due (the heartbeat timer also fires at the silence deadline). */
  #nextPingAt = 0;
  /** The armed ack timer acks again even with nothing new (a duplicate arrived). */
  #ackForce = false;

  #attempt = 0;
  readonly #armed = new Set<TimerKey>();

  /** By request id (the wire's). */
  readonly #pending = new Map<string, PendingRequest>();
  /** By nonce. */
  readonly #pings = new Map<number, PendingPing>();
  /** Requests and pings by call number, for their timeouts. */
  readonly #calls = new Map<number, PendingRequest | PendingPing>();
  #nonce = 0;
  readonly #idPrefix: string;
  #idCounter = 0;

  /** The effects of the step under way. */
  #out: SessionEffect[] = [];

  constructor(settings: HandsetSessionOptions) {
    this.#settings = settings;
    this.#now = settings.now;
    this.#random = settings.random;
    this.#requestTimeoutMs = settings.requestTimeoutMs ?? 30_000;
    this.#ackIntervalMs = settings.ackIntervalMs ?? 1_000;
    this.#fallbackAfterMs = settings.fallbackAfterMs ?? 5_000;
    this.#resumeBusyLimitMs = settings.resumeBusyLimitMs ?? 60_000;
    this.#mode = settings.transport ?? 'auto';
    this.#token = settings.token;
    this.#urls = settings.urls !== undefined && settings.urls.length > 0 ? [...settings.urls] : [''];
    let caps = settings.caps;
    for (const plugin of settings.plugins) if (plugin.caps) caps = withCaps(caps, plugin.caps);
    if (settings.compression !== false) caps = withCaps(caps, { compression: [DEFLATE] });
    this.#helloCaps = caps;
    this.#requestPlugins = settings.plugins.filter((p) => p.request !== undefined);
    this.#eventPlugins = settings.plugins.filter((p) => p.expandEvent !== undefined);
    // Request ids must be unique per device across app restarts: a random
    // prefix per Handset instance, then a counter.
    this.#idPrefix = Math.floor(this.#random() * 36 ** 6)
      .toString(36)
      .padStart(6, '0');
  }

  /** Closed by close() or by a refusal no retry fixes. */
  get closed(): boolean {
    return this.#closed;
  }

  get sessionId(): string | undefined {
    return this.#sessionId;
  }

  /** The carrier kind of the live session; undefined while disconnected. */
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

  /** The gateway URL of the live session, or of the next attempt while disconnected. */
  get url(): string {
    const index = this.#welcomed && this.#carrier !== undefined ? this.#carrier.url : this.#urlIndex;
    return this.#urls[index] ?? '';
  }

  /** Handles one input; returns what to do, in order. */
  step(input: SessionInput): SessionEffect[] {
    const out: SessionEffect[] = [];
    this.#out = out;
    switch (input.type) {
      case 'connect':
        this.#connect(input.call);
        break;
      case 'request':
        this.#request(input);
        break;
      case 'ping':
        this.#ping(input.call);
        break;
      case 'switch':
        this.#switch(input.call, input.kind);
        break;
      case 'close':
        this.#close(input.call);
        break;
      case 'frame':
        if (input.carrier === this.#carrier?.id) this.#onFrame(this.#carrier, input.frame);
        else if (input.carrier === this.#candidate?.id) this.#onCandidateFrame(this.#candidate, input.frame);
        break;
      case 'carrier-closed':
        if (input.carrier === this.#carrier?.id) this.#onCarrierClose(this.#carrier, input.info);
        else if (input.carrier === this.#candidate?.id) this.#onCandidateClose(this.#candidate, input.info);
        break;
      case 'carrier-acked':
        this.#onCarrierAck(input.carrier, input.seq);
        break;
      case 'timer':
        // A timer cancelled or replaced meanwhile is stale.
        if (this.#armed.delete(input.timer)) this.#onTimer(input.timer);
        break;
    }
    return out;
  }

  // ---- the application's calls ---------------------------------------------

  #connect(call: number): void {
    if (this.#closed) {
      this.#reject(call, closedError());
      return;
    }
    if (this.#connectResult !== undefined) {
      this.#resolve(call, this.#connectResult);
      return;
    }
    this.#connectCalls.push(call);
    if (this.#started) return;
    this.#started = true;
    this.#openCarrier();
  }

  #request(input: Extract<SessionInput, { type: 'request' }>): void {
    const { call, method, body } = input;
    if (this.#closed) {
      this.#reject(call, closedError());
      return;
    }
    if (typeof method !== 'string' || method === '') {
      this.#reject(call, new GatewayError('request.bad_input', 'method is required', { field: 'method' }));
      return;
    }
    const id = input.id ?? `${this.#idPrefix}.${(++this.#idCounter).toString(36)}`;
    if (this.#pending.has(id)) {
      this.#reject(
        call,
        new GatewayError('request.duplicate', `request ${id} is still pending`, { field: 'id' }),
      );
      return;
    }
    const frame: Request = { kind: Kind.Request, id, method };
    if (body !== undefined) frame.body = body;
    let expand: PendingRequest['expand'];
    try {
      for (const plugin of this.#requestPlugins) {
        const rewrite: RequestRewrite | undefined = plugin.request?.(method, frame.body);
        if (rewrite === undefined) continue;
        if (rewrite.body !== undefined) frame.body = rewrite.body;
        const next = rewrite.expandResponse;
        if (next === undefined) continue;
        // Undone in the reverse order: the first plugin's form is the outermost.
        const prev = expand;
        expand = prev === undefined ? next : (answer) => prev(next(answer));
      }
    } catch (err) {
      this.#reject(call, toGatewayError(err));
      return;
    }
    // Encode once up front: a body the codec cannot carry, or one over the
    // gateway's frame limit, fails here rather than closing the carrier.
    try {
      const limit = this.#welcome?.maxFrameBytes;
      encodeFrame(frame, limit !== undefined && limit > 0 ? { maxFrameBytes: limit } : undefined);
    } catch (err) {
      const code = err instanceof GatewayError ? err.code : undefined;
      if (code === 'protocol.frame_too_large' || code === 'protocol.limit') {
        this.#reject(call, err as GatewayError);
        return;
      }
      const message = err instanceof Error ? err.message : String(err);
      this.#reject(
        call,
        new GatewayError('request.bad_input', `the request cannot be encoded: ${message}`, {
          field: 'body',
          cause: err,
        }),
      );
      return;
    }
    const entry: PendingRequest = { type: 'request', call, frame };
    if (expand !== undefined) entry.expand = expand;
    this.#pending.set(id, entry);
    this.#calls.set(call, entry);
    this.#schedule(call, this.#now() + (input.timeoutMs ?? this.#requestTimeoutMs));
    if (this.#welcomed && this.#carrier !== undefined) this.#send(this.#carrier, frame);
  }

  #ping(call: number): void {
    if (this.#closed) {
      this.#reject(call, closedError());
      return;
    }
    const entry: PendingPing = { type: 'ping', call, nonce: this.#nextNonce() };
    this.#pings.set(entry.nonce, entry);
    this.#calls.set(call, entry);
    this.#schedule(call, this.#now() + this.#requestTimeoutMs);
    if (this.#welcomed) this.#sendPing(entry);
  }

  /** Moves the session to the other carrier kind, and pins it (no more automatic fallback). */
  #switch(call: number, kind: CarrierKind): void {
    if (this.#closed) {
      this.#reject(call, closedError());
      return;
    }
    if (kind !== 'ws' && kind !== 'poll') {
      this.#reject(call, new GatewayError('request.bad_input', `unknown transport ${String(kind)}`));
      return;
    }
    const previousMode = this.#mode;
    this.#mode = kind;
    if (this.#welcomed && this.#carrier?.kind === kind) {
      this.#resolve(call, undefined);
      return;
    }
    this.#switchWaiters.push({ kind, call });
    if (this.#welcomed && this.#sessionId !== undefined) {
      this.#openCandidate(kind, previousMode);
    } else if (
      this.#started &&
      (this.#armed.has('reconnect') || this.#carrier === undefined || this.#carrier.kind !== kind)
    ) {
      // Not connected: stop waiting, or trying on the other kind; try this one now.
      this.#abandonAttempt();
      this.#openCarrier();
    }
  }

  /** Ends the session on this side: acks what was received, says Bye, rejects what is pending. */
  #close(call: number): void {
    if (this.#closed) {
      this.#resolve(call, undefined);
      return;
    }
    const wasConnected = this.#welcomed;
    this.#closed = true;
    this.#stopTimers();
    if (this.#welcomed && this.#lastSeq > this.#ackedSeq) this.#sendAck();
    // Log out: the gateway ends the session now rather than keeping it for a Resume that
    // cannot come (a closed Handset forgets its session).
    if (this.#welcomed && this.#carrier !== undefined) {
      this.#send(this.#carrier, {
        kind: Kind.Bye,
        code: 'session.logout',
        message: 'logout',
        resumable: false,
      });
    }
    const carrier = this.#carrier;
    const candidate = this.#candidate;
    this.#carrier = undefined;
    this.#candidate = undefined;
    this.#welcomed = false;
    this.#rejectAll(new GatewayError('session.closed', 'the handset was closed'));
    if (wasConnected)
      this.#emit('disconnected', { code: 'session.closed', reason: 'closed', willReconnect: false });
    if (carrier !== undefined) this.#out.push({ type: 'close', carrier: carrier.id });
    if (candidate !== undefined) this.#out.push({ type: 'close', carrier: candidate.id });
    this.#resolve(call, undefined);
  }

  // ---- carriers -------------------------------------------------------------

  #nextKind(): CarrierKind {
    return this.#mode === 'auto' ? this.#autoKind : this.#mode;
  }

  #newCarrier(kind: CarrierKind, url = this.#urlIndex): CarrierRef {
    const carrier = { id: this.#nextCarrierId++, kind, url };
    this.#out.push({
      type: 'open',
      carrier: carrier.id,
      kind,
      url: this.#urls[url] ?? '',
      first: this.#firstFrame(),
    });
    return carrier;
  }

  /**
   * The gateway behind `carrier`'s URL refused, timed out or froze: the next
   * attempt goes to the next URL (round robin, so the last good one comes
   * round again).
   */
  #moveOn(carrier: CarrierRef): void {
    if (carrier.url === this.#urlIndex) this.#urlIndex = (carrier.url + 1) % this.#urls.length;
  }

  /** The first frame on a new carrier: Resume if there is a session, Hello otherwise. */
  #firstFrame(): Hello | Resume {
    if (this.#sessionId !== undefined && this.#resumeToken !== undefined) {
      // A Resume acks everything up to lastSeq (SPEC.md §5).
      this.#ackedSeq = this.#lastSeq;
      this.#cancel('ack');
      return {
        kind: Kind.Resume,
        version: PROTOCOL_VERSION,
        sessionId: this.#sessionId,
        resumeToken: this.#resumeToken,
        lastSeq: this.#lastSeq,
      };
    }
    const hello: Hello = { kind: Kind.Hello, version: PROTOCOL_VERSION, imei: this.#settings.imei };
    if (this.#settings.secret !== undefined) hello.secret = this.#settings.secret;
    else if (this.#token !== undefined) hello.token = this.#token;
    if (this.#settings.client !== undefined) hello.client = this.#settings.client;
    if (this.#helloCaps !== undefined) hello.caps = this.#helloCaps;
    return hello;
  }

  #openCarrier(): void {
    if (this.#closed) return;
    this.#cancel('reconnect');
    const kind = this.#nextKind();
    this.#welcomed = false;
    this.#closeCode = undefined;
    // A WebSocket that a proxy lets open but never answers through counts as failed in 'auto'.
    const handshakeMs =
      kind === 'ws' && this.#mode === 'auto'
        ? this.#fallbackAfterMs
        : Math.max(this.#fallbackAfterMs, this.#requestTimeoutMs);
    this.#schedule('attempt', this.#now() + handshakeMs);
    this.#carrier = this.#newCarrier(kind);
  }

  #onAttemptTimeout(): void {
    const carrier = this.#carrier;
    if (carrier === undefined || this.#welcomed) return;
    let delay: number | undefined;
    if (this.#urls.length > 1) {
      // A frozen edge accepts TCP and answers nothing: another URL is likelier than long-poll here.
      this.#moveOn(carrier);
      if (
        carrier.kind === 'ws' &&
        this.#mode === 'auto' &&
        ++this.#wsFailures >= WS_FAILURES_BEFORE_FALLBACK
      ) {
        this.#autoKind = 'poll';
        this.#wsFailures = 0;
      }
    } else if (carrier.kind === 'ws' && this.#mode === 'auto') {
      this.#autoKind = 'poll';
      this.#wsFailures = 0;
      delay = 0;
    }
    this.#loseCarrier(carrier, `no Welcome within ${this.#fallbackAfterMs} ms`, undefined, delay);
  }

  /** Cancels a scheduled retry or an attempt that has not been welcomed yet. */
  #abandonAttempt(): void {
    this.#cancel('reconnect');
    if (this.#carrier !== undefined && !this.#welcomed) {
      this.#out.push({ type: 'close', carrier: this.#carrier.id });
      this.#carrier = undefined;
      this.#cancel('attempt');
    }
  }

  #openCandidate(kind: CarrierKind, previousMode: TransportMode): void {
    if (this.#candidate !== undefined) {
      if (this.#candidate.kind === kind) return;
      previousMode = this.#candidate.previousMode;
      this.#dropCandidate(new GatewayError('session.moved', 'another switch was requested'), false);
    }
    this.#schedule('switch', this.#now() + this.#requestTimeoutMs);
    // The same gateway: the switch moves the session between its carriers.
    const { id, url } = this.#newCarrier(kind, this.#carrier?.url);
    this.#candidate = { id, kind, url, previousMode };
  }

  #onCandidateFrame(candidate: Candidate, frame: Frame): void {
    if (frame.kind === Kind.Welcome) {
      // Promote: the gateway moved the session here; the old carrier gets Bye session.moved.
      this.#cancel('switch');
      this.#candidate = undefined;
      const old = this.#carrier;
      this.#stopCarrierTimers();
      this.#cancel('reconnect');
      const carrier: CarrierRef = { id: candidate.id, kind: candidate.kind, url: candidate.url };
      this.#carrier = carrier;
      this.#welcomed = false;
      this.#closeCode = undefined;
      if (old !== undefined) this.#out.push({ type: 'close', carrier: old.id });
      this.#onFrame(carrier, frame);
      return;
    }
    if (frame.kind === Kind.Error || frame.kind === Kind.Bye) this.#dropCandidate(errorFromFrame(frame));
  }

  #onCandidateClose(candidate: Candidate, info: CarrierCloseInfo): void {
    this.#dropCandidate(
      info.error ??
        new GatewayError('request.unavailable', `cannot switch to ${candidate.kind}: ${info.reason}`, {
          retryable: true,
        }),
    );
  }

  #dropCandidate(err: GatewayError, restoreMode = true): void {
    const candidate = this.#candidate;
    if (candidate === undefined) return;
    this.#candidate = undefined;
    if (restoreMode) this.#mode = candidate.previousMode;
    this.#cancel('switch');
    this.#out.push({ type: 'close', carrier: candidate.id });
    this.#settleSwitch(candidate.kind, err);
    // The old carrier may already have left for the move (Bye session.moved).
    if (this.#carrier === undefined) this.#scheduleReconnect();
  }

  #onCarrierClose(carrier: CarrierRef, info: CarrierCloseInfo): void {
    if (this.#closed) return;
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
    // Not welcomed, or not answering in time: this URL refused, failed or froze
    // (a dropped live carrier is retried where it was).
    if (!this.#welcomed || info.timedOut === true) this.#moveOn(carrier);
    this.#loseCarrier(carrier, info.reason, this.#closeCode ?? info.error?.code, delay);
  }

  #onCarrierAck(id: number, seq: number): void {
    // Only what was received can be acked; a GET of an earlier session's carrier says nothing.
    if (id !== this.#carrier?.id || seq <= this.#ackedSeq || seq > this.#lastSeq) return;
    this.#ackedSeq = seq;
    if (this.#ackedSeq >= this.#lastSeq) this.#cancel('ack');
  }

  /** The current carrier is gone: tell the application, retry after a backoff (or `delayMs`). */
  #loseCarrier(carrier: CarrierRef, reason: string, code?: string, delayMs?: number): void {
    if (carrier !== this.#carrier) return;
    const wasWelcomed = this.#welcomed;
    this.#stopCarrierTimers();
    this.#carrier = undefined;
    this.#welcomed = false;
    this.#out.push({ type: 'close', carrier: carrier.id });
    if (wasWelcomed) {
      const event: HandsetDisconnectedEvent = { reason, willReconnect: !this.#closed };
      if (code !== undefined) event.code = code;
      this.#emit('disconnected', event);
    }
    this.#scheduleReconnect(delayMs);
  }

  #scheduleReconnect(delayMs?: number): void {
    if (this.#closed || this.#carrier !== undefined || this.#armed.has('reconnect')) return;
    // The delay grows per round over every URL: the other edges are tried before waiting longer.
    const round = Math.floor(this.#attempt / this.#urls.length);
    const delay = delayMs ?? backoffDelay(round, this.#settings.backoff ?? {}, this.#random);
    this.#attempt++;
    this.#emit('reconnecting', {
      attempt: this.#attempt,
      delayMs: delay,
      transport: this.#nextKind(),
      url: this.#urls[this.#urlIndex] ?? '',
    });
    this.#schedule('reconnect', this.#now() + delay);
  }

  /** A refusal no retry fixes: stop, reject everything, tell the application. */
  #fail(err: GatewayError, emitError = true): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#stopTimers();
    if (this.#carrier !== undefined) this.#out.push({ type: 'close', carrier: this.#carrier.id });
    if (this.#candidate !== undefined) this.#out.push({ type: 'close', carrier: this.#candidate.id });
    this.#carrier = undefined;
    this.#candidate = undefined;
    this.#welcomed = false;
    if (emitError) this.#emit('error', err);
    this.#emit('disconnected', { code: err.code, reason: err.message, willReconnect: false });
    this.#rejectAll(err);
  }

  #rejectAll(err: GatewayError): void {
    this.#settleConnect(err);
    for (const p of this.#pending.values()) this.#cancel(p.call);
    for (const p of this.#pings.values()) this.#cancel(p.call);
    const settled = [...this.#pending.values(), ...this.#pings.values()];
    this.#pending.clear();
    this.#pings.clear();
    this.#calls.clear();
    for (const p of settled) this.#reject(p.call, err);
    const waiters = this.#switchWaiters;
    this.#switchWaiters = [];
    for (const w of waiters) this.#reject(w.call, err);
  }

  #settleConnect(result: Welcome | GatewayError): void {
    const calls = this.#connectCalls;
    if (calls.length === 0) return;
    this.#connectCalls = [];
    if (result instanceof GatewayError) {
      for (const call of calls) this.#reject(call, result);
    } else {
      this.#connectResult = result;
      for (const call of calls) this.#resolve(call, result);
    }
  }

  /** Resolves (no error) or rejects the switch calls waiting for `kind`. */
  #settleSwitch(kind: CarrierKind, err?: GatewayError): void {
    if (this.#switchWaiters.length === 0) return;
    const rest: Array<{ kind: CarrierKind; call: number }> = [];
    for (const w of this.#switchWaiters) {
      if (w.kind !== kind) rest.push(w);
      else if (err === undefined) this.#resolve(w.call, undefined);
      else this.#reject(w.call, err);
    }
    this.#switchWaiters = rest;
  }

  // ---- frames ---------------------------------------------------------------

  #onFrame(carrier: CarrierRef, frame: Frame): void {
    if (this.#closed) return;
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
        this.#send(carrier, { kind: Kind.Pong, nonce: frame.nonce });
        return;
      case Kind.Pong: {
        const ping = this.#pings.get(frame.nonce);
        if (ping?.sentAt === undefined) return;
        this.#pings.delete(frame.nonce);
        this.#calls.delete(ping.call);
        this.#cancel(ping.call);
        this.#resolve(ping.call, Math.max(0, this.#now() - ping.sentAt));
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

  #onWelcome(carrier: CarrierRef, welcome: Welcome): void {
    this.#cancel('attempt');
    const resumed = welcome.resumed && welcome.sessionId === this.#sessionId;
    if (!resumed) {
      // A new session numbers its frames from 1 again; nothing kept from before it counts.
      this.#lastSeq = 0;
      this.#ackedSeq = 0;
      this.#ahead.clear();
      this.#cancel('gap');
      this.#cancel('ack');
    }
    this.#sessionId = welcome.sessionId;
    this.#resumeToken = welcome.resumeToken;
    this.#busySince = undefined;
    // The last good URL: the next attempt after a plain drop goes here again.
    this.#urlIndex = carrier.url;
    if (welcome.token) this.#token = welcome.token;
    this.#welcome = welcome;
    this.#welcomed = true;
    this.#attempt = 0;
    this.#wsFailures = 0;
    this.#closeCode = undefined;
    this.#startHeartbeat(welcome.heartbeatMs);
    this.#settleConnect(welcome);
    this.#emit('connected', {
      sessionId: welcome.sessionId,
      transport: carrier.kind,
      resumed,
      url: this.#urls[carrier.url] ?? '',
    });
    for (const p of this.#pending.values()) this.#send(carrier, p.frame);
    for (const p of this.#pings.values()) this.#sendPing(p);
    this.#settleSwitch(carrier.kind);
  }

  #onSequenced(frame: SequencedFrame): void {
    if (frame.seq <= this.#lastSeq || this.#ahead.has(frame.seq)) {
      // Already delivered or kept (a replay after resume, a repeated GET): drop it,
      // but ack again so that the gateway stops sending it.
      this.#scheduleAck(true);
      return;
    }
    if (frame.seq > this.#lastSeq + 1) {
      // A gap: what comes later waits until it fills, and only what came in order is acked,
      // so the gateway keeps (and the next GET or a Resume brings) what is missing.
      if (this.#ahead.size >= MAX_FRAMES_AHEAD) {
        if (this.#carrier !== undefined) {
          this.#loseCarrier(
            this.#carrier,
            `frames ahead of seq ${this.#lastSeq + 1} never came`,
            undefined,
            0,
          );
        }
        return;
      }
      this.#ahead.set(frame.seq, frame);
      if (!this.#armed.has('gap')) this.#schedule('gap', this.#now() + GAP_PATIENCE_MS);
      return;
    }
    this.#deliver(frame);
    for (
      let next = this.#ahead.get(this.#lastSeq + 1);
      next !== undefined;
      next = this.#ahead.get(this.#lastSeq + 1)
    ) {
      this.#ahead.delete(next.seq);
      this.#deliver(next);
    }
    if (this.#ahead.size === 0) this.#cancel('gap');
    this.#scheduleAck(false);
  }

  /** Hands the next frame in seq order to the application. */
  #deliver(frame: SequencedFrame): void {
    this.#lastSeq = frame.seq;
    switch (frame.kind) {
      case Kind.Event:
        this.#emit('event', this.#pushEvent(frame.name, frame.body, frame.seq));
        break;
      case Kind.Response: {
        const p = this.#pending.get(frame.id);
        if (p !== undefined) {
          this.#forget(p);
          if (p.expand === undefined) this.#resolve(p.call, frame.body);
          else {
            try {
              this.#resolve(p.call, p.expand(frame.body));
            } catch (err) {
              this.#reject(p.call, toGatewayError(err));
            }
          }
        }
        break;
      }
      case Kind.Error: {
        const p = frame.id === undefined ? undefined : this.#pending.get(frame.id);
        if (p !== undefined) {
          this.#forget(p);
          this.#reject(p.call, errorFromFrame(frame));
        } else if (frame.id === undefined) {
          this.#emit('error', errorFromFrame(frame));
        }
        break;
      }
    }
  }

  /** The event as the application sees it: the plugins' documented form. */
  #pushEvent(name: string, body: Value | undefined, seq: number): HandsetPushEvent {
    for (const plugin of this.#eventPlugins) {
      try {
        const expanded = plugin.expandEvent?.(name, body);
        if (expanded === undefined) continue;
        name = expanded.name;
        body = expanded.body;
      } catch {
        // A plugin that cannot read the body leaves it as it came.
      }
    }
    const event: HandsetPushEvent = { name, seq };
    if (body !== undefined) event.body = body;
    return event;
  }

  #onSessionError(carrier: CarrierRef, frame: ErrorFrame): void {
    const err = errorFromFrame(frame);
    if (frame.id !== undefined) {
      // An unsequenced answer to a request (e.g. request.duplicate is not stored for replay).
      const p = this.#pending.get(frame.id);
      if (p !== undefined && frame.code !== 'request.duplicate') {
        this.#forget(p);
        this.#reject(p.call, err);
      }
      if (!frame.fatal) return;
    }
    if (!frame.fatal) {
      this.#emit('error', err);
      return;
    }
    this.#closeCode = frame.code;
    if (FATAL_AUTH_CODES.has(frame.code)) {
      this.#fail(err);
      return;
    }
    if (frame.code === 'session.busy' && !this.#welcomed && this.#sessionId !== undefined) {
      // A Resume the holder does not answer (frozen, or cut off from the bus): after a while a
      // new session serves the device better than waiting; what the old one held is lost to it.
      this.#busySince ??= this.#now();
      if (this.#now() - this.#busySince >= this.#resumeBusyLimitMs) {
        this.#emit('error', err);
        this.#forgetSession();
        this.#loseCarrier(carrier, `${err.message} (given up)`, frame.code, 0);
        return;
      }
    }
    if (frame.code === 'auth.resume_failed') {
      // The session is gone (expired, or the gateway restarted): start a new one
      // at once; the application learns it from 'connected' {resumed: false}.
      this.#forgetSession();
      this.#loseCarrier(carrier, err.message, frame.code, 0);
      return;
    }
    this.#emit('error', err);
    this.#loseCarrier(carrier, err.message, frame.code, frame.retryAfterMs ?? undefined);
  }

  #onBye(carrier: CarrierRef, bye: Bye): void {
    this.#closeCode = bye.code;
    if (bye.code === 'session.moved' && this.#candidate !== undefined) {
      // Our own switch: the gateway may tell the old carrier before the new
      // one hears its Welcome. Let the old one go quietly and wait.
      this.#stopCarrierTimers();
      this.#carrier = undefined;
      this.#welcomed = false;
      this.#out.push({ type: 'close', carrier: carrier.id });
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
    // A draining edge refuses new carriers: resume on another one.
    if (bye.code === 'session.draining') this.#moveOn(carrier);
    this.#loseCarrier(carrier, bye.message || bye.code, bye.code, bye.reconnectAfterMs ?? undefined);
  }

  #forgetSession(): void {
    this.#sessionId = undefined;
    this.#resumeToken = undefined;
    this.#busySince = undefined;
  }

  // ---- acks and heartbeat ---------------------------------------------------

  #scheduleAck(duplicate: boolean): void {
    if (!this.#welcomed) return;
    if (this.#lastSeq - this.#ackedSeq >= ACK_EVERY_FRAMES) {
      this.#sendAck();
      return;
    }
    if (this.#armed.has('ack')) return;
    if (!duplicate && this.#lastSeq <= this.#ackedSeq) return;
    this.#ackForce = duplicate;
    this.#schedule('ack', this.#now() + this.#ackIntervalMs);
  }

  #sendAck(force = false): void {
    this.#cancel('ack');
    if (!this.#welcomed || this.#carrier === undefined) return;
    if (this.#lastSeq <= this.#ackedSeq && !(force && this.#lastSeq > 0)) return;
    this.#ackedSeq = this.#lastSeq;
    this.#send(this.#carrier, { kind: Kind.Ack, seq: this.#lastSeq });
  }

  #startHeartbeat(heartbeatMs: number): void {
    this.#cancel('heartbeat');
    this.#lastRxAt = this.#now();
    // From the gateway: anything but a positive number turns the heartbeat off, as 0 does.
    this.#heartbeatMs = Number.isFinite(heartbeatMs) && heartbeatMs > 0 ? heartbeatMs : 0;
    if (this.#heartbeatMs === 0) return;
    this.#nextPingAt = this.#now() + this.#heartbeatMs;
    this.#schedule('heartbeat', this.#nextPingAt);
  }

  /**
   * Fires when a Ping is due and at the silence deadline, whichever comes
   * first: a Ping tick alone would notice a freeze only at the first tick
   * past the deadline, up to a heartbeat late.
   */
  #onHeartbeat(): void {
    const carrier = this.#carrier;
    const heartbeatMs = this.#heartbeatMs;
    if (carrier === undefined || !this.#welcomed || heartbeatMs === 0) return;
    const now = this.#now();
    const deadline = this.#lastRxAt + DEAD_AFTER_HEARTBEATS * heartbeatMs;
    if (now >= deadline) {
      this.#moveOn(carrier);
      this.#loseCarrier(
        carrier,
        `nothing heard for ${DEAD_AFTER_HEARTBEATS}× ${heartbeatMs} ms`,
        'session.heartbeat_timeout',
      );
      return;
    }
    if (now >= this.#nextPingAt) {
      this.#send(carrier, { kind: Kind.Ping, nonce: this.#nextNonce() });
      this.#nextPingAt = now + heartbeatMs;
    }
    this.#schedule('heartbeat', Math.min(this.#nextPingAt, deadline));
  }

  #sendPing(entry: PendingPing): void {
    entry.sentAt = this.#now();
    if (this.#carrier !== undefined) this.#send(this.#carrier, { kind: Kind.Ping, nonce: entry.nonce });
  }

  #nextNonce(): number {
    this.#nonce = this.#nonce >= 0xffffffff ? 1 : this.#nonce + 1;
    return this.#nonce;
  }

  // ---- timers -----------------------------------------------------------------

  #onTimer(timer: TimerKey): void {
    switch (timer) {
      case 'reconnect':
        this.#openCarrier();
        return;
      case 'attempt':
        this.#onAttemptTimeout();
        return;
      case 'heartbeat':
        this.#onHeartbeat();
        return;
      case 'ack':
        this.#sendAck(this.#ackForce);
        return;
      case 'gap':
        // The frames before the ones kept did not come on this carrier: a Resume gets them replayed.
        if (this.#ahead.size > 0 && this.#carrier !== undefined) {
          this.#loseCarrier(this.#carrier, `seq ${this.#lastSeq + 1} did not come`, undefined, 0);
        }
        return;
      case 'switch': {
        const kind = this.#candidate?.kind;
        if (kind !== undefined) {
          this.#dropCandidate(
            new GatewayError('request.timeout', `no Welcome on ${kind}`, { retryable: true }),
          );
        }
        return;
      }
      default:
        this.#onCallTimeout(timer);
    }
  }

  #onCallTimeout(call: number): void {
    const entry = this.#calls.get(call);
    if (entry === undefined) return;
    this.#forget(entry);
    this.#reject(
      call,
      entry.type === 'request'
        ? new GatewayError('request.timeout', `no answer to ${entry.frame.method} (${entry.frame.id})`, {
            retryable: true,
          })
        : new GatewayError('request.timeout', 'no Pong', { retryable: true }),
    );
  }

  /** A pending request or ping leaves the books (it is about to be settled). */
  #forget(entry: PendingRequest | PendingPing): void {
    if (entry.type === 'request') this.#pending.delete(entry.frame.id);
    else this.#pings.delete(entry.nonce);
    this.#calls.delete(entry.call);
    this.#cancel(entry.call);
  }

  #stopCarrierTimers(): void {
    // What was kept beyond a gap comes again with the replay of the next Resume (or a new session).
    this.#ahead.clear();
    this.#cancel('gap');
    this.#cancel('ack');
    this.#cancel('heartbeat');
    this.#cancel('attempt');
  }

  #stopTimers(): void {
    this.#stopCarrierTimers();
    this.#cancel('reconnect');
    this.#cancel('switch');
  }

  // ---- effects ----------------------------------------------------------------

  #send(carrier: CarrierRef, frame: Frame): void {
    this.#out.push({ type: 'send', carrier: carrier.id, frame });
  }

  #schedule(timer: TimerKey, at: number): void {
    this.#armed.add(timer);
    this.#out.push({ type: 'schedule', timer, at });
  }

  #cancel(timer: TimerKey): void {
    if (this.#armed.delete(timer)) this.#out.push({ type: 'cancel', timer });
  }

  #emit<K extends keyof HandsetEvents>(name: K, payload: HandsetEvents[K]): void {
    this.#out.push({ type: 'emit', name, payload } as EmitEffect);
  }

  #resolve(call: number, value: unknown): void {
    this.#out.push({ type: 'resolve', call, value });
  }

  #reject(call: number, error: GatewayError): void {
    this.#out.push({ type: 'reject', call, error });
  }
}

/** `caps` with `extra` added: lists joined without repeats, other fields only where unset. */
function withCaps(caps: Capabilities | undefined, extra: Capabilities): Capabilities | undefined {
  let out = caps as Record<string, unknown> | undefined;
  for (const [key, add] of Object.entries(extra) as Array<[string, unknown]>) {
    if (add === undefined) continue;
    const have = out?.[key];
    if (Array.isArray(add)) {
      const list: unknown[] = Array.isArray(have) ? have : [];
      const missing = add.filter((x) => !list.includes(x));
      if (missing.length > 0) out = { ...out, [key]: [...list, ...missing] };
    } else if (have === undefined) {
      out = { ...out, [key]: add };
    }
  }
  return out as Capabilities | undefined;
}

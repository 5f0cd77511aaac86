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
 *
 * This file holds the carriers' life (attempt, Welcome, loss); the rest is in
 * session/: next URL, kind and backoff (route.ts), pending calls (calls.ts),
 * seq order and acks (sequence.ts), heartbeat (heartbeat.ts), Hello/Resume
 * (identity.ts), switch (switch.ts), Error and Bye (refusals.ts), plugins
 * (plugins.ts), the effect list (effects.ts).
 */

import type { CarrierCloseInfo, CarrierKind } from './carriers/carrier.ts';
import { GatewayError } from './errors.ts';
import type { HandsetPlugin } from './handset-plugin.ts';
import type {
  HandsetDisconnectedEvent,
  HandsetSessionOptions,
  SessionEffect,
  SessionInput,
  TimerKey,
} from './handset-types.ts';
import {
  type ErrorFrame,
  type Frame,
  type Hello,
  isSequenced,
  Kind,
  type Resume,
  type SequencedFrame,
  type Welcome,
} from './messages.ts';
import { CallBook } from './session/calls.ts';
import { SessionEffects } from './session/effects.ts';
import { Heartbeat } from './session/heartbeat.ts';
import { SessionIdentity } from './session/identity.ts';
import { pushEvent } from './session/plugins.ts';
import { byeVerdict, type CarrierVerdict, errorFromFrame, errorVerdict } from './session/refusals.ts';
import { CarrierRoute } from './session/route.ts';
import { SequenceTracker } from './session/sequence.ts';
import { type CarrierRef, CarrierSwitch } from './session/switch.ts';

export { errorFromFrame } from './session/refusals.ts';

const closedError = () => new GatewayError('session.closed', 'the handset is closed');

export class HandsetSession {
  readonly #now: () => number;
  readonly #requestTimeoutMs: number;
  readonly #fallbackAfterMs: number;
  readonly #resumeBusyLimitMs: number;
  readonly #eventPlugins: HandsetPlugin[];

  readonly #fx = new SessionEffects();
  readonly #route: CarrierRoute;
  readonly #calls: CallBook;
  readonly #seq: SequenceTracker;
  readonly #heartbeat: Heartbeat;
  readonly #identity: SessionIdentity;
  readonly #switcher: CarrierSwitch;

  #closed = false;
  /** connect() was called: carriers are opened from then on. */
  #started = false;
  #nextCarrierId = 1;
  #carrier?: CarrierRef;
  /** The current carrier got its Welcome (otherwise it is still an attempt). */
  #welcomed = false;
  /** Code of the fatal Error or Bye the current carrier received before closing. */
  #closeCode?: string;

  constructor(settings: HandsetSessionOptions) {
    this.#now = settings.now;
    this.#requestTimeoutMs = settings.requestTimeoutMs ?? 30_000;
    this.#fallbackAfterMs = settings.fallbackAfterMs ?? 5_000;
    this.#resumeBusyLimitMs = settings.resumeBusyLimitMs ?? 60_000;
    this.#identity = new SessionIdentity(settings);
    this.#eventPlugins = settings.plugins.filter((p) => p.expandEvent !== undefined);
    this.#route = new CarrierRoute({
      ...settings,
      fallbackAfterMs: this.#fallbackAfterMs,
      requestTimeoutMs: this.#requestTimeoutMs,
    });
    this.#calls = new CallBook(this.#fx, settings.now, settings.random, settings.plugins);
    this.#heartbeat = new Heartbeat(this.#fx, settings.now);
    this.#seq = new SequenceTracker(
      {
        timers: this.#fx,
        now: settings.now,
        live: () => this.#welcomed && this.#carrier !== undefined,
        sendAck: (seq) => {
          if (this.#carrier !== undefined) this.#fx.send(this.#carrier.id, { kind: Kind.Ack, seq });
        },
        deliver: (frame) => this.#deliver(frame),
        giveUp: (reason) => {
          if (this.#carrier !== undefined) this.#loseCarrier(this.#carrier, reason, undefined, 0);
        },
      },
      settings.ackIntervalMs ?? 1_000,
    );
    this.#switcher = new CarrierSwitch(
      {
        fx: this.#fx,
        route: this.#route,
        now: settings.now,
        open: (kind, url) => this.#newCarrier(kind, url),
        dropped: () => {
          // The old carrier may already have left for the move (Bye session.moved).
          if (this.#carrier === undefined) this.#scheduleReconnect();
        },
      },
      this.#requestTimeoutMs,
    );
  }

  /** Closed by close() or by a refusal no retry fixes. */
  get closed(): boolean {
    return this.#closed;
  }

  get sessionId(): string | undefined {
    return this.#identity.sessionId;
  }

  /** The carrier kind of the live session; undefined while disconnected. */
  get transport(): CarrierKind | undefined {
    return this.#welcomed ? this.#carrier?.kind : undefined;
  }

  /** The highest seq delivered to the application in this session. */
  get lastSeq(): number {
    return this.#seq.lastSeq;
  }

  /** The last Welcome (heartbeat, limits, token). */
  get welcome(): Welcome | undefined {
    return this.#identity.welcome;
  }

  /** The gateway URL of the live session, or of the next attempt while disconnected. */
  get url(): string {
    const index = this.#welcomed && this.#carrier !== undefined ? this.#carrier.url : this.#route.urlIndex;
    return this.#route.urlAt(index);
  }

  /** Handles one input; returns what to do, in order. */
  step(input: SessionInput): SessionEffect[] {
    const out = this.#fx.begin();
    if (this.#closed && 'call' in input && input.type !== 'close') {
      this.#fx.reject(input.call, closedError());
      return out;
    }
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
        else if (input.carrier === this.#switcher.candidate?.id) this.#onCandidateFrame(input.frame);
        break;
      case 'carrier-closed':
        if (input.carrier === this.#carrier?.id) this.#onCarrierClose(this.#carrier, input.info);
        else if (input.carrier === this.#switcher.candidate?.id) this.#switcher.onClose(input.info);
        break;
      case 'carrier-acked':
        // A GET of an earlier session's carrier says nothing.
        if (input.carrier === this.#carrier?.id) this.#seq.carrierAcked(input.seq);
        break;
      case 'timer':
        // A timer cancelled or replaced meanwhile is stale.
        if (this.#fx.fired(input.timer)) this.#onTimer(input.timer);
        break;
    }
    return out;
  }

  // ---- the application's calls ---------------------------------------------

  #connect(call: number): void {
    this.#calls.connect(call);
    // Welcomed (so started) when connect() resolved at once.
    if (this.#started) return;
    this.#started = true;
    this.#openCarrier();
  }

  #request(input: Extract<SessionInput, { type: 'request' }>): void {
    const maxFrameBytes = this.#identity.welcome?.maxFrameBytes;
    const frame = this.#calls.request(input, maxFrameBytes, this.#requestTimeoutMs);
    if (frame !== undefined && this.#welcomed && this.#carrier !== undefined)
      this.#fx.send(this.#carrier.id, frame);
  }

  #ping(call: number): void {
    const nonce = this.#calls.addPing(call, this.#now() + this.#requestTimeoutMs);
    if (this.#welcomed) {
      this.#calls.pingSent(nonce, this.#now());
      if (this.#carrier !== undefined) this.#fx.send(this.#carrier.id, { kind: Kind.Ping, nonce });
    }
  }

  /** Moves the session to the other carrier kind, and pins it (no more automatic fallback). */
  #switch(call: number, kind: CarrierKind): void {
    if (kind !== 'ws' && kind !== 'poll') {
      this.#fx.reject(call, new GatewayError('request.bad_input', `unknown transport ${String(kind)}`));
      return;
    }
    const previousMode = this.#route.mode;
    this.#route.mode = kind;
    if (this.#welcomed && this.#carrier?.kind === kind) {
      this.#fx.resolve(call, undefined);
      return;
    }
    this.#switcher.wait(kind, call);
    if (this.#welcomed && this.#identity.sessionId !== undefined) {
      this.#switcher.open(kind, previousMode, this.#carrier?.url);
    } else if (
      this.#started &&
      (this.#fx.armed('reconnect') || this.#carrier === undefined || this.#carrier.kind !== kind)
    ) {
      // Not connected: stop waiting, or trying on the other kind; try this one now.
      this.#abandonAttempt();
      this.#openCarrier();
    }
  }

  /** Ends the session on this side: acks what was received, says Bye, rejects what is pending. */
  #close(call: number): void {
    if (this.#closed) {
      this.#fx.resolve(call, undefined);
      return;
    }
    const wasConnected = this.#welcomed;
    this.#closed = true;
    this.#stopTimers();
    if (this.#welcomed) this.#seq.flush();
    // Log out: the gateway ends the session now rather than keeping it for a Resume that
    // cannot come (a closed Handset forgets its session).
    if (this.#welcomed && this.#carrier !== undefined) {
      this.#fx.send(this.#carrier.id, {
        kind: Kind.Bye,
        code: 'session.logout',
        message: 'logout',
        resumable: false,
      });
    }
    const carrier = this.#carrier;
    const candidate = this.#switcher.forget();
    this.#carrier = undefined;
    this.#welcomed = false;
    const err = new GatewayError('session.closed', 'the handset was closed');
    this.#calls.rejectAll(err);
    this.#switcher.rejectAll(err);
    if (wasConnected)
      this.#fx.emit('disconnected', { code: 'session.closed', reason: 'closed', willReconnect: false });
    if (carrier !== undefined) this.#fx.close(carrier.id);
    if (candidate !== undefined) this.#fx.close(candidate);
    this.#fx.resolve(call, undefined);
  }

  // ---- carriers -------------------------------------------------------------

  #newCarrier(kind: CarrierKind, url = this.#route.urlIndex): CarrierRef {
    const carrier = { id: this.#nextCarrierId++, kind, url };
    this.#fx.push({
      type: 'open',
      carrier: carrier.id,
      kind,
      url: this.#route.urlAt(url),
      first: this.#firstFrame(),
    });
    return carrier;
  }

  /** The first frame on a new carrier: Resume if there is a session, Hello otherwise. */
  #firstFrame(): Hello | Resume {
    const resume = this.#identity.resume(this.#seq.lastSeq);
    if (resume === undefined) return this.#identity.hello();
    // A Resume acks everything up to lastSeq (SPEC.md §5).
    this.#seq.resuming();
    return resume;
  }

  #openCarrier(): void {
    if (this.#closed) return;
    this.#fx.cancel('reconnect');
    const kind = this.#route.nextKind();
    this.#welcomed = false;
    this.#closeCode = undefined;
    this.#fx.schedule('attempt', this.#now() + this.#route.handshakeMs(kind));
    this.#carrier = this.#newCarrier(kind);
  }

  #onAttemptTimeout(): void {
    const carrier = this.#carrier;
    if (carrier === undefined || this.#welcomed) return;
    const delay = this.#route.attemptTimedOut(carrier.kind, carrier.url);
    this.#loseCarrier(carrier, `no Welcome within ${this.#fallbackAfterMs} ms`, undefined, delay);
  }

  /** Cancels a scheduled retry or an attempt that has not been welcomed yet. */
  #abandonAttempt(): void {
    this.#fx.cancel('reconnect');
    if (this.#carrier !== undefined && !this.#welcomed) {
      this.#fx.close(this.#carrier.id);
      this.#carrier = undefined;
      this.#fx.cancel('attempt');
    }
  }

  /** Promotes the switch's candidate when it is welcomed: the old carrier gets Bye session.moved. */
  #onCandidateFrame(frame: Frame): void {
    const promoted = this.#switcher.onFrame(frame);
    if (promoted === undefined) return;
    const { id, kind, url } = promoted.candidate;
    const old = this.#carrier;
    this.#stopCarrierTimers();
    this.#fx.cancel('reconnect');
    const carrier: CarrierRef = { id, kind, url };
    this.#carrier = carrier;
    this.#welcomed = false;
    this.#closeCode = undefined;
    if (old !== undefined) this.#fx.close(old.id);
    this.#onFrame(carrier, promoted.welcome);
  }

  #onCarrierClose(carrier: CarrierRef, info: CarrierCloseInfo): void {
    if (this.#closed) return;
    let delay: number | undefined;
    if (!this.#welcomed && info.failedToOpen) delay = this.#route.openFailed(carrier.kind);
    if (info.error !== undefined && !this.#welcomed && info.error.code === 'config.invalid') {
      this.#fail(info.error);
      return;
    }
    // Not welcomed, or not answering in time: this URL refused, failed or froze
    // (a dropped live carrier is retried where it was).
    if (!this.#welcomed || info.timedOut === true) this.#route.moveOn(carrier.url);
    this.#loseCarrier(carrier, info.reason, this.#closeCode ?? info.error?.code, delay);
  }

  /** The current carrier is gone: tell the application, retry after a backoff (or `delayMs`). */
  #loseCarrier(carrier: CarrierRef, reason: string, code?: string, delayMs?: number): void {
    if (carrier !== this.#carrier) return;
    const wasWelcomed = this.#welcomed;
    this.#stopCarrierTimers();
    this.#carrier = undefined;
    this.#welcomed = false;
    this.#fx.close(carrier.id);
    if (wasWelcomed) {
      const event: HandsetDisconnectedEvent = { reason, willReconnect: !this.#closed };
      if (code !== undefined) event.code = code;
      this.#fx.emit('disconnected', event);
    }
    this.#scheduleReconnect(delayMs, reason);
  }

  #scheduleReconnect(delayMs?: number, reason?: string): void {
    if (this.#closed || this.#carrier !== undefined || this.#fx.armed('reconnect')) return;
    const retry = this.#route.nextRetry(delayMs);
    this.#fx.emit('reconnecting', reason === undefined ? retry : { ...retry, reason });
    this.#fx.schedule('reconnect', this.#now() + retry.delayMs);
  }

  /** A refusal no retry fixes: stop, reject everything, tell the application. */
  #fail(err: GatewayError, emitError = true): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#stopTimers();
    const candidate = this.#switcher.forget();
    if (this.#carrier !== undefined) this.#fx.close(this.#carrier.id);
    if (candidate !== undefined) this.#fx.close(candidate);
    this.#carrier = undefined;
    this.#welcomed = false;
    if (emitError) this.#fx.emit('error', err);
    this.#fx.emit('disconnected', { code: err.code, reason: err.message, willReconnect: false });
    this.#calls.rejectAll(err);
    this.#switcher.rejectAll(err);
  }

  // ---- frames ---------------------------------------------------------------

  #onFrame(carrier: CarrierRef, frame: Frame): void {
    if (this.#closed) return;
    this.#heartbeat.heard();
    if (isSequenced(frame)) {
      // Sequenced frames are valid on an active carrier only (SPEC §3.8-3.10): one sent ahead of its
      // Welcome is ignored; the gateway replays it after the Welcome from the lastSeq the Resume gave.
      if (this.#welcomed) this.#seq.onFrame(frame);
      return;
    }
    switch (frame.kind) {
      case Kind.Welcome:
        this.#onWelcome(carrier, frame);
        return;
      case Kind.Ping:
        this.#fx.send(carrier.id, { kind: Kind.Pong, nonce: frame.nonce });
        return;
      case Kind.Pong:
        this.#calls.pong(frame.nonce, this.#now());
        return;
      case Kind.Error:
        this.#onSessionError(carrier, frame);
        return;
      case Kind.Bye:
        this.#closeCode = frame.code;
        this.#apply(carrier, byeVerdict(frame, this.#switcher.candidate !== undefined));
        return;
      default:
        // Hello, Resume, Request, Ack only travel device → gateway; ignore.
        return;
    }
  }

  #onWelcome(carrier: CarrierRef, welcome: Welcome): void {
    this.#fx.cancel('attempt');
    const resumed = this.#identity.welcomed(welcome);
    if (!resumed) this.#seq.reset();
    this.#route.welcomed(carrier.url);
    this.#welcomed = true;
    this.#closeCode = undefined;
    this.#heartbeat.start(welcome.heartbeatMs);
    this.#calls.settleConnect(welcome);
    this.#fx.emit('connected', {
      sessionId: welcome.sessionId,
      transport: carrier.kind,
      resumed,
      url: this.#route.urlAt(carrier.url),
    });
    this.#calls.resend(this.#now(), (frame) => this.#fx.send(carrier.id, frame));
    this.#switcher.settle(carrier.kind);
  }

  /** Hands the next frame in seq order to the application. */
  #deliver(frame: SequencedFrame): void {
    switch (frame.kind) {
      case Kind.Event:
        this.#fx.emit('event', pushEvent(this.#eventPlugins, frame.name, frame.body, frame.seq));
        break;
      case Kind.Response:
        this.#calls.answer(frame.id, frame.body);
        break;
      case Kind.Error:
        if (frame.id !== undefined) this.#calls.refuse(frame.id, errorFromFrame(frame));
        else this.#fx.emit('error', errorFromFrame(frame));
        break;
    }
  }

  #onSessionError(carrier: CarrierRef, frame: ErrorFrame): void {
    const err = errorFromFrame(frame);
    if (frame.id !== undefined) {
      // An unsequenced answer to a request (e.g. request.duplicate is not stored for replay).
      if (frame.code !== 'request.duplicate') this.#calls.refuse(frame.id, err);
      if (!frame.fatal) return;
    }
    if (!frame.fatal) {
      this.#fx.emit('error', err);
      return;
    }
    this.#closeCode = frame.code;
    const busyTooLong =
      frame.code === 'session.busy' &&
      !this.#welcomed &&
      this.#identity.sessionId !== undefined &&
      this.#identity.busyFor(this.#now(), this.#resumeBusyLimitMs);
    this.#apply(carrier, errorVerdict(frame, err, busyTooLong));
  }

  /** What a fatal Error or a Bye decided for `carrier`. */
  #apply(carrier: CarrierRef, verdict: CarrierVerdict): void {
    switch (verdict.do) {
      case 'fail':
        this.#fail(verdict.error, verdict.emitError);
        return;
      case 'let-go':
        this.#stopCarrierTimers();
        this.#carrier = undefined;
        this.#welcomed = false;
        this.#fx.close(carrier.id);
        return;
      case 'reconnect':
        if (verdict.emitError !== undefined) this.#fx.emit('error', verdict.emitError);
        if (verdict.forgetSession === true) this.#identity.forget();
        if (verdict.moveOn === true) this.#route.moveOn(carrier.url);
        if (verdict.backSoon === true) this.#route.expectBackSoon(verdict.delayMs);
        this.#loseCarrier(carrier, verdict.reason, verdict.code, verdict.delayMs);
        return;
    }
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
        this.#seq.onAckTimer();
        return;
      case 'gap':
        this.#seq.onGapTimer();
        return;
      case 'switch':
        this.#switcher.onTimer();
        return;
      default:
        this.#calls.timeout(timer);
    }
  }

  #onHeartbeat(): void {
    const carrier = this.#carrier;
    if (carrier === undefined || !this.#welcomed) return;
    const dead = this.#heartbeat.tick(() =>
      this.#fx.send(carrier.id, { kind: Kind.Ping, nonce: this.#calls.nextNonce() }),
    );
    if (dead === undefined) return;
    this.#route.moveOn(carrier.url);
    this.#loseCarrier(carrier, dead, 'session.heartbeat_timeout');
  }

  #stopCarrierTimers(): void {
    this.#seq.stop();
    this.#heartbeat.stop();
    this.#fx.cancel('attempt');
  }

  #stopTimers(): void {
    this.#stopCarrierTimers();
    this.#fx.cancel('reconnect');
    this.#fx.cancel('switch');
  }
}

/**
 * Drives the Handset SDK's session state machine (device-protocol/
 * handset-session.ts) the way its shell does, with a fake clock and no I/O:
 * carriers are numbers the machine opened, timers are entries fired when the
 * clock passes them, calls are numbers settled by effects. Shared by the
 * machine's unit tests and its fuzzer.
 *
 * Every step is checked against the machine's invariants, and a violation
 * throws at once:
 * - frames go only to carriers that are open; a timer fires only when armed;
 * - every call is settled exactly once, and only calls that were made;
 * - a sequenced frame reaches the application (an event, an answer, an
 *   error) at most once and in seq order, within a session, and never past a
 *   gap: the delivered seq only moves over seqs that were received;
 * - the acked seq (Ack frames, Resume lastSeq) never goes backwards within a
 *   session, and never passes what was received; closing a live session
 *   leaves everything received acked;
 * - a new carrier's Welcome resends every pending request, and no Request
 *   goes out for a request already settled;
 * - once connecting, a carrier is open or a retry is scheduled (never stuck);
 * - a carrier opens to one of the configured URLs;
 * - once closed, only cleanup comes out, and nothing is left running.
 */

import type { CarrierCloseInfo, CarrierKind } from '../device-protocol/carriers/carrier.ts';
import type { GatewayError } from '../device-protocol/errors.ts';
import { HandsetSession } from '../device-protocol/handset-session.ts';
import type {
  HandsetEvents,
  HandsetSessionOptions,
  SessionEffect,
  SessionInput,
  TimerKey,
} from '../device-protocol/handset-types.ts';
import {
  type Frame,
  type Hello,
  isSequenced,
  Kind,
  type Resume,
  type SequencedFrame,
  type Value,
  type Welcome,
} from '../device-protocol/messages.ts';

export interface DriverCarrier {
  id: number;
  kind: CarrierKind;
  /** The gateway URL it opened to. */
  url: string;
  first: Hello | Resume;
  /** Frames sent on it, after `first`. */
  sent: Frame[];
}

export type Settlement = { ok: true; value: unknown } | { ok: false; error: GatewayError };

export class SessionDriver {
  readonly session: HandsetSession;
  /** The fake clock the machine reads. */
  now = 1_000_000;
  /** Open carriers by number. */
  readonly open = new Map<number, DriverCarrier>();
  /** Every carrier ever opened, in order. */
  readonly carriers: DriverCarrier[] = [];
  /** Armed timers and when they fire. */
  readonly timers = new Map<TimerKey, number>();
  readonly settled = new Map<number, Settlement>();
  /** Every effect of every step, in order. */
  readonly effects: SessionEffect[] = [];
  readonly emitted: Array<
    { [K in keyof HandsetEvents]: { name: K; payload: HandsetEvents[K] } }[keyof HandsetEvents]
  > = [];

  #nextCall = 1;
  readonly #calls = new Map<number, SessionInput['type']>();
  /** Request id → its call, while unsettled. */
  readonly #requestIds = new Map<string, number>();
  #maxDelivered = 0;
  #maxReceived = 0;
  /** Seqs received on an open carrier in this session (the delivered seq may only move over these). */
  #received = new Set<number>();
  #maxAcked = 0;
  /** connect() was called: from then on a carrier is open or a retry is due. */
  #connecting = false;
  /** The carrier of the last Welcome. */
  #welcomedOn?: number;
  readonly #urls: readonly string[];

  constructor(options: Partial<HandsetSessionOptions> = {}) {
    this.#urls = options.urls !== undefined && options.urls.length > 0 ? options.urls : [''];
    this.session = new HandsetSession({
      imei: '356938035643809',
      secret: 'device-secret',
      transport: 'ws',
      plugins: [],
      random: () => 0.5,
      ...options,
      now: () => this.now,
    });
  }

  // ---- inputs --------------------------------------------------------------

  connect(): number {
    this.#connecting = true;
    return this.#call((call) => ({ type: 'connect', call }));
  }

  request(method: string, body?: Value, opts: { id?: string; timeoutMs?: number } = {}): number {
    return this.#call((call) => ({ type: 'request', call, method, body, ...opts }));
  }

  ping(): number {
    return this.#call((call) => ({ type: 'ping', call }));
  }

  switchTo(kind: CarrierKind): number {
    return this.#call((call) => ({ type: 'switch', call, kind }));
  }

  /** Closes; a live session's close must leave everything received acked. */
  close(): number {
    const live = this.session.transport !== undefined;
    const lastSeq = this.session.lastSeq;
    const call = this.#call((call) => ({ type: 'close', call }));
    if (live && lastSeq > this.#maxAcked)
      throw new Error(`closed with seq ${lastSeq} received, ${this.#maxAcked} acked`);
    return call;
  }

  /** A frame from the gateway on `carrier` (default: the newest open one). */
  receive(frame: Frame, carrier = this.newest().id): SessionEffect[] {
    return this.step({ type: 'frame', carrier, frame });
  }

  /** The carrier ends by itself (network, gateway close). */
  drop(carrier = this.newest().id, info: Partial<CarrierCloseInfo> = {}): SessionEffect[] {
    this.open.delete(carrier);
    return this.step({
      type: 'carrier-closed',
      carrier,
      info: { reason: 'dropped', failedToOpen: false, ...info },
    });
  }

  /** Moves the clock on by `ms`, firing every timer it passes, in time order. */
  advance(ms: number): void {
    const until = this.now + ms;
    for (;;) {
      const next = this.nextTimer();
      if (next === undefined || next[1] > until) break;
      this.now = Math.max(this.now, next[1]);
      this.timers.delete(next[0]);
      this.step({ type: 'timer', timer: next[0] });
    }
    this.now = until;
  }

  /** Moves the clock to the earliest armed timer and fires it; false when none is armed. */
  fireNext(): boolean {
    const next = this.nextTimer();
    if (next === undefined) return false;
    this.advance(Math.max(0, next[1] - this.now));
    return true;
  }

  nextTimer(): [TimerKey, number] | undefined {
    let best: [TimerKey, number] | undefined;
    for (const entry of this.timers) if (best === undefined || entry[1] < best[1]) best = entry;
    return best;
  }

  // ---- what came out -------------------------------------------------------

  newest(): DriverCarrier {
    let newest: DriverCarrier | undefined;
    for (const c of this.open.values()) if (newest === undefined || c.id > newest.id) newest = c;
    if (newest === undefined) throw new Error('no open carrier');
    return newest;
  }

  /** Frames sent on every carrier (after their first), in order. */
  sent(kind?: Kind): Frame[] {
    const all: Frame[] = [];
    for (const e of this.effects)
      if (e.type === 'send' && (kind === undefined || e.frame.kind === kind)) all.push(e.frame);
    return all;
  }

  events<K extends keyof HandsetEvents>(name: K): HandsetEvents[K][] {
    return this.emitted.filter((e) => e.name === name).map((e) => e.payload as HandsetEvents[K]);
  }

  result(call: number): Settlement | undefined {
    return this.settled.get(call);
  }

  /** Calls made and not settled yet. */
  unsettled(): number[] {
    return [...this.#calls.keys()].filter((c) => !this.settled.has(c));
  }

  /** A Welcome answering a carrier's first frame (its Resume's session, or a new one); default the newest. */
  welcome(fields: Partial<Welcome> = {}, carrier?: number): Welcome {
    const first =
      carrier === undefined ? this.newest().first : this.carriers.find((c) => c.id === carrier)?.first;
    const resumed = first?.kind === Kind.Resume;
    return {
      kind: Kind.Welcome,
      sessionId: first?.kind === Kind.Resume ? first.sessionId : 's1',
      resumeToken: 'rt',
      token: 'jwt',
      tokenExpiresAt: this.now + 3_600_000,
      heartbeatMs: 30_000,
      resumed,
      lastSeq: 0,
      resumeWindowMs: 60_000,
      maxFrameBytes: 64 * 1024,
      serverTime: this.now,
      ...fields,
    };
  }

  // ---- the step and its checks ----------------------------------------------

  #call(make: (call: number) => SessionInput): number {
    const call = this.#nextCall++;
    const input = make(call);
    this.#calls.set(call, input.type);
    if (input.type === 'request' && input.id !== undefined && !this.#requestIds.has(input.id)) {
      this.#requestIds.set(input.id, call);
    }
    this.step(input);
    return call;
  }

  step(input: SessionInput): SessionEffect[] {
    const closedBefore = this.session.closed;
    let sequenced: SequencedFrame | undefined;
    if (input.type === 'frame' && isSequenced(input.frame)) {
      sequenced = input.frame;
      if (this.open.has(input.carrier)) {
        this.#maxReceived = Math.max(this.#maxReceived, sequenced.seq);
        this.#received.add(sequenced.seq);
      }
    }
    if (
      input.type === 'carrier-acked' &&
      input.carrier === this.#welcomedOn &&
      this.open.has(input.carrier) &&
      input.seq <= this.session.lastSeq
    ) {
      // A long-poll GET's ack= stands for an Ack.
      this.#maxAcked = Math.max(this.#maxAcked, input.seq);
    }
    const lastBefore = this.session.lastSeq;
    const effects = this.session.step(input);
    const requestsSent: string[] = [];
    let delivered = false;
    let welcomedOn: number | undefined;
    for (const e of effects) {
      this.effects.push(e);
      if (closedBefore) this.#checkCleanup(input, e);
      switch (e.type) {
        case 'open': {
          if (this.open.has(e.carrier) || this.carriers.some((c) => c.id === e.carrier)) {
            throw new Error(`carrier ${e.carrier} opened twice`);
          }
          if (!this.#urls.includes(e.url))
            throw new Error(`carrier ${e.carrier} opened to unknown URL ${e.url}`);
          const carrier = { id: e.carrier, kind: e.kind, url: e.url, first: e.first, sent: [] };
          this.open.set(e.carrier, carrier);
          this.carriers.push(carrier);
          if (e.first.kind === Kind.Resume) this.#acked(e.first.lastSeq, 'Resume');
          break;
        }
        case 'send': {
          const carrier = this.open.get(e.carrier);
          if (carrier === undefined)
            throw new Error(`frame ${Kind[e.frame.kind]} sent on closed carrier ${e.carrier}`);
          carrier.sent.push(e.frame);
          if (e.frame.kind === Kind.Ack) this.#acked(e.frame.seq, 'Ack');
          if (e.frame.kind === Kind.Request) requestsSent.push(e.frame.id);
          break;
        }
        case 'close':
          this.open.delete(e.carrier);
          break;
        case 'schedule':
          if (e.at < this.now) throw new Error(`timer ${e.timer} scheduled in the past`);
          this.timers.set(e.timer, e.at);
          break;
        case 'cancel':
          if (!this.timers.delete(e.timer)) throw new Error(`timer ${e.timer} cancelled but not armed`);
          break;
        case 'emit':
          this.emitted.push({ name: e.name, payload: e.payload } as SessionDriver['emitted'][number]);
          if (e.name === 'event' || (e.name === 'error' && sequenced !== undefined)) delivered = true;
          if (e.name === 'connected') {
            welcomedOn = input.type === 'frame' ? input.carrier : undefined;
            this.#welcomedOn = welcomedOn;
            if (!e.payload.resumed) {
              // A new session numbers from 1 again.
              this.#maxDelivered = 0;
              this.#maxAcked = 0;
              this.#maxReceived = 0;
              this.#received.clear();
            }
          }
          break;
        case 'resolve':
        case 'reject': {
          if (!this.#calls.has(e.call)) throw new Error(`call ${e.call} settled but never made`);
          if (this.settled.has(e.call)) throw new Error(`call ${e.call} settled twice`);
          this.settled.set(
            e.call,
            e.type === 'resolve' ? { ok: true, value: e.value } : { ok: false, error: e.error },
          );
          for (const [id, call] of this.#requestIds) if (call === e.call) this.#requestIds.delete(id);
          if (sequenced !== undefined && this.#calls.get(e.call) === 'request') delivered = true;
          break;
        }
      }
    }
    if (sequenced !== undefined && delivered) {
      if (sequenced.seq <= this.#maxDelivered) {
        throw new Error(`seq ${sequenced.seq} delivered after ${this.#maxDelivered}`);
      }
      this.#maxDelivered = sequenced.seq;
    }
    const lastAfter = this.session.lastSeq;
    if (lastAfter > lastBefore) {
      for (let seq = lastBefore + 1; seq <= lastAfter; seq++) {
        if (!this.#received.has(seq))
          throw new Error(`delivered past seq ${seq}, which never came (a gap skipped)`);
      }
    }
    for (const id of requestsSent) {
      const call = this.#requestIds.get(id);
      if (call !== undefined && this.settled.has(call))
        throw new Error(`request ${id} sent after it was settled`);
    }
    if (welcomedOn !== undefined) {
      const pending = this.unsettled().filter((c) => this.#calls.get(c) === 'request').length;
      if (requestsSent.length !== pending) {
        throw new Error(`Welcome resent ${requestsSent.length} requests, ${pending} pending`);
      }
    }
    if (this.#connecting && !this.session.closed && this.open.size === 0 && !this.timers.has('reconnect')) {
      throw new Error('stuck: no carrier open and no retry scheduled');
    }
    if (this.session.closed) {
      if (this.timers.size > 0) throw new Error(`closed with timers armed: ${[...this.timers.keys()]}`);
      if (this.open.size > 0) throw new Error(`closed with carriers open: ${[...this.open.keys()]}`);
      const left = this.unsettled();
      if (left.length > 0) throw new Error(`closed with calls unsettled: ${left}`);
    }
    return effects;
  }

  #acked(seq: number, what: string): void {
    if (seq < this.#maxAcked) throw new Error(`${what} ${seq} after ack ${this.#maxAcked}`);
    if (seq > this.#maxReceived)
      throw new Error(`${what} ${seq} acks more than received (${this.#maxReceived})`);
    this.#maxAcked = seq;
  }

  /** Once closed, a step may only clean up and settle the call it was given. */
  #checkCleanup(input: SessionInput, e: SessionEffect): void {
    if (e.type === 'cancel' || e.type === 'close') return;
    if ((e.type === 'resolve' || e.type === 'reject') && 'call' in input && e.call === input.call) return;
    throw new Error(`${e.type} effect after close (input ${input.type})`);
  }
}

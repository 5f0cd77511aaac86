/**
 * The books of the application's pending requests and pings: request ids,
 * Ping nonces, the timeout of each call, and settling each exactly once
 * (by its answer, its timeout, or everything at once when the session ends).
 * The session state machine (handset-session.ts) decides when frames go out;
 * this only remembers what is owed an answer.
 */

import { encodeFrame } from '../codec.ts';
import { GatewayError, toGatewayError } from '../errors.ts';
import type { HandsetPlugin } from '../handset-plugin.ts';
import type { SessionInput } from '../handset-types.ts';
import { type Frame, Kind, type Request, type Value, type Welcome } from '../messages.ts';
import type { CallEffects } from './effects.ts';
import { type ExpandAnswer, rewriteRequest } from './plugins.ts';

interface PendingRequest {
  type: 'request';
  call: number;
  frame: Request;
  /** The plugins' way back from the wire form of the answer. */
  expand?: ExpandAnswer;
}

interface PendingPing {
  type: 'ping';
  call: number;
  nonce: number;
  /** Unset until the Ping went out on a live carrier. */
  sentAt?: number;
}

/**
 * Why `frame` cannot be sent, or undefined: encoded once up front, so that a
 * body the codec cannot carry, or one over the gateway's frame limit, fails
 * the call rather than closing the carrier.
 */
function unsendable(frame: Request, maxFrameBytes: number | undefined): GatewayError | undefined {
  try {
    encodeFrame(frame, maxFrameBytes !== undefined && maxFrameBytes > 0 ? { maxFrameBytes } : undefined);
    return undefined;
  } catch (err) {
    const code = err instanceof GatewayError ? err.code : undefined;
    if (code === 'protocol.frame_too_large' || code === 'protocol.limit') return err as GatewayError;
    const message = err instanceof Error ? err.message : String(err);
    return new GatewayError('request.bad_input', `the request cannot be encoded: ${message}`, {
      field: 'body',
      cause: err,
    });
  }
}

export class CallBook {
  readonly #effects: CallEffects;
  readonly #now: () => number;
  /** The plugins that rewrite requests. */
  readonly #plugins: readonly HandsetPlugin[];
  /** By request id (the wire's). */
  readonly #requests = new Map<string, PendingRequest>();
  /** By nonce. */
  readonly #pings = new Map<number, PendingPing>();
  /** Requests and pings by call number, for their timeouts. */
  readonly #calls = new Map<number, PendingRequest | PendingPing>();
  /** connect() calls waiting for the first Welcome. */
  #connectCalls: number[] = [];
  #connectResult?: Welcome;
  #nonce = 0;
  readonly #idPrefix: string;
  #idCounter = 0;

  constructor(
    effects: CallEffects,
    now: () => number,
    random: () => number,
    plugins: readonly HandsetPlugin[],
  ) {
    this.#effects = effects;
    this.#now = now;
    this.#plugins = plugins.filter((p) => p.request !== undefined);
    // Request ids must be unique per device across app restarts: a random
    // prefix per Handset instance, then a counter.
    this.#idPrefix = Math.floor(random() * 36 ** 6)
      .toString(36)
      .padStart(6, '0');
  }

  /**
   * A connect() call: settled at once when the session was welcomed already,
   * else with the first Welcome.
   */
  connect(call: number): void {
    if (this.#connectResult !== undefined) this.#effects.resolve(call, this.#connectResult);
    else this.#connectCalls.push(call);
  }

  /** The first Welcome (or the end of the session) settles the waiting connect() calls. */
  settleConnect(result: Welcome | GatewayError): void {
    const calls = this.#connectCalls;
    if (calls.length === 0) return;
    this.#connectCalls = [];
    if (result instanceof GatewayError) {
      for (const call of calls) this.#effects.reject(call, result);
    } else {
      this.#connectResult = result;
      for (const call of calls) this.#effects.resolve(call, result);
    }
  }

  /** A request id of this instance never used before. */
  #nextId(): string {
    return `${this.#idPrefix}.${(++this.#idCounter).toString(36)}`;
  }

  /** A Ping nonce: counts up, wrapping within 32 bits. */
  nextNonce(): number {
    this.#nonce = this.#nonce >= 0xffffffff ? 1 : this.#nonce + 1;
    return this.#nonce;
  }

  hasRequest(id: string): boolean {
    return this.#requests.has(id);
  }

  /**
   * Books the application's request and returns its frame, or rejects the
   * call (closed session aside: the host checks that) and returns undefined.
   */
  request(
    input: Extract<SessionInput, { type: 'request' }>,
    maxFrameBytes: number | undefined,
    defaultTimeoutMs: number,
  ): Request | undefined {
    const { call, method } = input;
    if (typeof method !== 'string' || method === '') {
      this.#effects.reject(
        call,
        new GatewayError('request.bad_input', 'method is required', { field: 'method' }),
      );
      return undefined;
    }
    const id = input.id ?? this.#nextId();
    if (this.#requests.has(id)) {
      this.#effects.reject(
        call,
        new GatewayError('request.duplicate', `request ${id} is still pending`, { field: 'id' }),
      );
      return undefined;
    }
    const frame: Request = { kind: Kind.Request, id, method };
    let expand: ExpandAnswer | undefined;
    try {
      const rewritten = rewriteRequest(this.#plugins, method, input.body);
      if (rewritten.body !== undefined) frame.body = rewritten.body;
      expand = rewritten.expand;
    } catch (err) {
      this.#effects.reject(call, toGatewayError(err));
      return undefined;
    }
    const refusal = unsendable(frame, maxFrameBytes);
    if (refusal !== undefined) {
      this.#effects.reject(call, refusal);
      return undefined;
    }
    this.#addRequest(call, frame, expand, this.#now() + (input.timeoutMs ?? defaultTimeoutMs));
    return frame;
  }

  /** Books a request (its timeout fires at `deadline`). */
  #addRequest(call: number, frame: Request, expand: ExpandAnswer | undefined, deadline: number): void {
    const entry: PendingRequest = { type: 'request', call, frame };
    if (expand !== undefined) entry.expand = expand;
    this.#requests.set(frame.id, entry);
    this.#calls.set(call, entry);
    this.#effects.schedule(call, deadline);
  }

  /** Books a ping (its timeout fires at `deadline`); returns its nonce. */
  addPing(call: number, deadline: number): number {
    const entry: PendingPing = { type: 'ping', call, nonce: this.nextNonce() };
    this.#pings.set(entry.nonce, entry);
    this.#calls.set(call, entry);
    this.#effects.schedule(call, deadline);
    return entry.nonce;
  }

  /** The Ping with `nonce` goes out now: its RTT counts from here. */
  pingSent(nonce: number, now: number): void {
    const entry = this.#pings.get(nonce);
    if (entry !== undefined) entry.sentAt = now;
  }

  /** Every pending request and ping again, for a new carrier: requests first, with their ids. */
  resend(now: number, send: (frame: Frame) => void): void {
    for (const p of this.#requests.values()) send(p.frame);
    for (const p of this.#pings.values()) {
      p.sentAt = now;
      send({ kind: Kind.Ping, nonce: p.nonce });
    }
  }

  /** A Pong: settles its ping with the RTT, unless the Ping never went out. */
  pong(nonce: number, now: number): void {
    const ping = this.#pings.get(nonce);
    if (ping?.sentAt === undefined) return;
    this.#pings.delete(nonce);
    this.#calls.delete(ping.call);
    this.#effects.cancel(ping.call);
    this.#effects.resolve(ping.call, Math.max(0, now - ping.sentAt));
  }

  /** The answer to request `id`, in the application's form. */
  answer(id: string, body: Value | undefined): void {
    const p = this.#requests.get(id);
    if (p === undefined) return;
    this.#forget(p);
    if (p.expand === undefined) this.#effects.resolve(p.call, body);
    else {
      try {
        this.#effects.resolve(p.call, p.expand(body));
      } catch (err) {
        this.#effects.reject(p.call, toGatewayError(err));
      }
    }
  }

  /** Rejects request `id` if it is pending; false if it is not. */
  refuse(id: string, err: GatewayError): boolean {
    const p = this.#requests.get(id);
    if (p === undefined) return false;
    this.#forget(p);
    this.#effects.reject(p.call, err);
    return true;
  }

  /** Call `call`'s timeout fired: reject it if it still waits. */
  timeout(call: number): void {
    const entry = this.#calls.get(call);
    if (entry === undefined) return;
    this.#forget(entry);
    this.#effects.reject(
      call,
      entry.type === 'request'
        ? new GatewayError('request.timeout', `no answer to ${entry.frame.method} (${entry.frame.id})`, {
            retryable: true,
          })
        : new GatewayError('request.timeout', 'no Pong', { retryable: true }),
    );
  }

  /** The session ended: rejects connect() calls, cancels every timeout, then rejects every call with `err`. */
  rejectAll(err: GatewayError): void {
    this.settleConnect(err);
    for (const p of this.#requests.values()) this.#effects.cancel(p.call);
    for (const p of this.#pings.values()) this.#effects.cancel(p.call);
    const settled = [...this.#requests.values(), ...this.#pings.values()];
    this.#requests.clear();
    this.#pings.clear();
    this.#calls.clear();
    for (const p of settled) this.#effects.reject(p.call, err);
  }

  /** A pending request or ping leaves the books (it is about to be settled). */
  #forget(entry: PendingRequest | PendingPing): void {
    if (entry.type === 'request') this.#requests.delete(entry.frame.id);
    else this.#pings.delete(entry.nonce);
    this.#calls.delete(entry.call);
    this.#effects.cancel(entry.call);
  }
}

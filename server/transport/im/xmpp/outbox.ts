/**
 * The account's outbox over stream management (XEP-0198). A message counts
 * as sent only once the server acknowledged it; one whose stream died before
 * the ack goes out again on the next fresh session, with the same id and
 * origin-id, so a receiver can recognise the resend. Without stream
 * management the best it can know is that the bytes left.
 *
 * @xmpp/stream-management keeps the counters and the queue; this follows its
 * events ('ack', 'fail', 'resumed') and the stream's SM nonzas.
 */
import type { EventEmitter } from 'node:events';
import { type XmlElement, xml } from '@xmpp/client';
import { GatewayError } from '../../../../device-protocol/errors.ts';
import { deferred, withTimeout } from './async.ts';
import { NS } from './types.ts';

export interface OutboxEntity {
  send(element: XmlElement): Promise<void>;
  on(event: 'nonza', listener: (el: XmlElement) => void): unknown;
}

/** What the outbox reads of @xmpp/stream-management. */
export interface OutboxStreamManagement extends Pick<EventEmitter, 'on'> {
  enabled: boolean;
  /** Id of the stream to resume; '' when there is none. */
  id: string;
  /** Stanzas the server acknowledged on the current stream. */
  outbound: number;
  outbound_q: Array<{ stanza: XmlElement }>;
}

export interface OutboxOptions {
  entity: OutboxEntity;
  sm: OutboxStreamManagement;
  /** The session is online: sends may go out now. */
  isOnline(): boolean;
  /** How long a send waits for the server's ack, reconnects included. */
  sendTimeoutMs: number;
  /** The server acknowledged `clientId` (`bodyBytes` of UTF-8 body). */
  onSent?(clientId: string, bodyBytes: number): void;
}

interface PendingSend {
  clientId: string;
  bodyBytes: number;
  stanza: () => XmlElement;
  inFlight: boolean;
  resolve: () => void;
  reject: (err: GatewayError) => void;
  timer: NodeJS.Timeout;
  promise: Promise<void>;
}

export class Outbox {
  readonly #entity: OutboxEntity;
  readonly #sm: OutboxStreamManagement;
  readonly #isOnline: () => boolean;
  readonly #sendTimeoutMs: number;
  readonly #onSent?: (clientId: string, bodyBytes: number) => void;
  readonly #pending = new Map<string, PendingSend>();
  #ackTimer: NodeJS.Immediate | undefined;
  /** Settles once this stream's SM negotiation is over (<enabled/>, <failed/> or resumed). */
  #smSettled = deferred<void>();
  #smOffered = false;
  #awaitingResume = false;

  constructor(opts: OutboxOptions) {
    this.#entity = opts.entity;
    this.#sm = opts.sm;
    this.#isOnline = opts.isOnline;
    this.#sendTimeoutMs = opts.sendTimeoutMs;
    this.#onSent = opts.onSent;
    this.#sm.on('ack', (stanza: XmlElement) => this.#onAck(stanza));
    this.#sm.on('fail', (stanza: XmlElement) => this.#onSmFail(stanza));
    this.#sm.on('resumed', () => this.#smSettled.resolve());
    this.#entity.on('nonza', (el) => this.#onNonza(el));
  }

  /**
   * Queues a message; resolves once the server acknowledged it. A second
   * call with a clientId still in flight joins the first.
   */
  submit(clientId: string, bodyBytes: number, stanza: () => XmlElement): Promise<void> {
    const existing = this.#pending.get(clientId);
    if (existing) return existing.promise;
    const d = deferred<void>();
    const entry: PendingSend = {
      clientId,
      bodyBytes,
      inFlight: false,
      stanza,
      resolve: () => d.resolve(),
      reject: (err) => d.reject(err),
      timer: setTimeout(() => {
        this.#pending.delete(clientId);
        d.reject(
          new GatewayError(
            'im.send_failed',
            `no acknowledgement from the XMPP server within ${this.#sendTimeoutMs} ms`,
            {
              retryable: true,
            },
          ),
        );
      }, this.#sendTimeoutMs),
      promise: d.promise,
    };
    entry.timer.unref?.();
    this.#pending.set(clientId, entry);
    if (this.#isOnline()) this.#transmit(entry);
    return d.promise;
  }

  /** A new connection attempt begins: its SM negotiation is still to come. */
  beginStream(): void {
    this.#smSettled = deferred<void>();
    this.#smOffered = false;
  }

  /**
   * On a fresh session: waits until SM is enabled (or refused). Stanzas sent
   * between resource binding and <enabled/> would be counted by our side but
   * not by the server's, shifting every later ack.
   */
  async whenEnabled(unlessDisconnected: <T>(promise: Promise<T>) => Promise<T>): Promise<void> {
    if (!this.#smOffered) return;
    await unlessDisconnected(withTimeout(this.#smSettled.promise, 10_000, 'enabling stream management'));
    // The library resets its counters in a promise continuation after <enabled/>;
    // setImmediate runs once those microtasks are done.
    await new Promise((resolve) => setImmediate(resolve));
  }

  /** Messages whose stream died unacknowledged go out again, same id and origin-id. */
  resendUnacked(): void {
    for (const entry of this.#pending.values()) if (!entry.inFlight) this.#transmit(entry);
  }

  /** Fails every message still waiting. */
  failAll(error: GatewayError): void {
    for (const entry of this.#pending.values()) {
      clearTimeout(entry.timer);
      entry.reject(error);
    }
    this.#pending.clear();
  }

  /** Cancels the pending ack request. */
  stop(): void {
    if (this.#ackTimer) clearImmediate(this.#ackTimer);
    this.#ackTimer = undefined;
  }

  #transmit(entry: PendingSend): void {
    entry.inFlight = true;
    const smOn = this.#sm.enabled;
    // The library's ack request is debounced: under a steady stream of sends it would never
    // go out, and every im.send would wait for a pause. One <r/> follows each burst instead
    // (every send of this event-loop turn): im.sent waits one server round trip, no timer, and
    // the extra bytes are on the server link, not the handset's.
    if (smOn && this.#ackTimer === undefined) {
      this.#ackTimer = setImmediate(() => {
        this.#ackTimer = undefined;
        if (this.#isOnline() && this.#sm.enabled) {
          this.#entity.send(xml('r', { xmlns: NS.sm })).catch(() => {});
        }
      });
    }
    this.#entity.send(entry.stanza()).then(
      () => {
        if (!smOn) this.#settle(entry.clientId);
      },
      () => {
        entry.inFlight = false;
      },
    );
  }

  #settle(clientId: string): void {
    const entry = this.#pending.get(clientId);
    if (!entry) return;
    this.#pending.delete(clientId);
    clearTimeout(entry.timer);
    entry.resolve();
    try {
      this.#onSent?.(clientId, entry.bodyBytes);
    } catch {
      // counters only
    }
  }

  #onAck(stanza: XmlElement): void {
    if (stanza.name === 'message' && stanza.attrs.id) this.#settle(stanza.attrs.id);
  }

  /**
   * A failed resumption may still say how many of our stanzas the server
   * handled on the old stream (XEP-0198 §4 'h' on <failed/>; Prosody keeps it
   * across restarts). Those count as acknowledged: sending them again would
   * deliver them twice. This runs before the library empties its queue.
   */
  #settleHandled(hAttr: string | undefined): void {
    const h = Number(hAttr);
    const sm = this.#sm;
    if (!Number.isInteger(h) || h < sm.outbound) return;
    for (const item of sm.outbound_q.slice(0, h - sm.outbound)) this.#onAck(item.stanza);
  }

  #onSmFail(stanza: XmlElement): void {
    const id = stanza.name === 'message' ? stanza.attrs.id : undefined;
    const entry = id === undefined ? undefined : this.#pending.get(id);
    if (entry) entry.inFlight = false;
  }

  #onNonza(el: XmlElement): void {
    if (el.is('features', NS.stream)) {
      this.#smOffered = el.getChild('sm', NS.sm) !== undefined;
      // The library decides synchronously, before this event, whether it will try
      // to resume (it has a previous stream id); a <failed/> then answers <resume/>.
      this.#awaitingResume = this.#smOffered && this.#sm.id !== '';
    } else if (el.is('enabled', NS.sm)) {
      this.#smSettled.resolve();
    } else if (el.is('resumed', NS.sm)) {
      this.#awaitingResume = false;
    } else if (el.is('failed', NS.sm)) {
      if (this.#awaitingResume) {
        this.#awaitingResume = false;
        this.#settleHandled(el.attrs.h);
      } else {
        this.#smSettled.resolve();
      }
    }
  }
}

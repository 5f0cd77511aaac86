/**
 * One connection attempt of @xmpp/client (TCP, stream, SASL, bind, or the
 * resumption of the previous stream) and the life of the stream it opens.
 * Whatever waits on the server fails at once when the stream is lost,
 * instead of at its own timeout.
 */
import type { EventEmitter } from 'node:events';
import type { XmlElement } from '@xmpp/client';
import { GatewayError } from '../../../../device-protocol/errors.ts';
import { deferred, withTimeout } from './async.ts';
import { mapXmppError } from './errors.ts';

/** What the connection uses of @xmpp/client. */
export interface ConnectionEntity extends Pick<EventEmitter, 'on' | 'off'> {
  status: string;
  options: { service?: string };
  streamManagement: Pick<EventEmitter, 'on' | 'off'>;
  iqCaller: {
    get(element: XmlElement, to?: string, timeoutMs?: number): Promise<XmlElement | undefined>;
    set(element: XmlElement, to?: string, timeoutMs?: number): Promise<XmlElement | undefined>;
  };
  connect(service?: string): Promise<void>;
  open(opts: { domain?: string; lang?: string }): Promise<unknown>;
  disconnect(): Promise<unknown>;
}

export interface ConnectionOptions {
  entity: ConnectionEntity;
  domain: string;
  /** One attempt (TCP, stream, SASL, bind, and `fresh`) must finish within this. */
  connectTimeoutMs: number;
}

export class Connection {
  readonly #entity: ConnectionEntity;
  readonly #domain: string;
  readonly #connectTimeoutMs: number;
  #disconnected = deferred<void>();

  constructor(opts: ConnectionOptions) {
    this.#entity = opts.entity;
    this.#domain = opts.domain;
    this.#connectTimeoutMs = opts.connectTimeoutMs;
    this.#entity.on('disconnect', () => this.#disconnected.resolve());
  }

  /** Resolves when the stream of the current attempt is gone. */
  disconnected(): Promise<void> {
    return this.#disconnected.promise;
  }

  /**
   * Connects and opens a stream; resolves once the account is online. A
   * fresh (not resumed) session runs `fresh` first, within the same time limit.
   * Resolves true when the previous stream was resumed.
   */
  async open(fresh: () => Promise<void>): Promise<boolean> {
    const x = this.#entity;
    this.#disconnected = deferred<void>();
    let resumed = false;
    let settled = false;
    const ready = new Promise<void>((resolve, reject) => {
      const finish = (err?: unknown) => {
        if (settled) return;
        settled = true;
        x.off('online', onOnline);
        x.off('error', onError);
        x.streamManagement.off('resumed', onResumed);
        if (err === undefined) resolve();
        else reject(err);
      };
      const onOnline = () => finish();
      const onResumed = () => {
        resumed = true;
        finish();
      };
      const onError = (err: unknown) => finish(err ?? new Error('XMPP error'));
      x.on('online', onOnline);
      x.on('error', onError);
      x.streamManagement.on('resumed', onResumed);
      this.#disconnected.promise.then(() =>
        finish(
          new GatewayError('im.unreachable', 'the XMPP server closed the connection', { retryable: true }),
        ),
      );
    });
    ready.catch(() => {});
    const attempt = (async () => {
      await x.connect(x.options.service);
      await x.open({ domain: this.#domain, lang: 'en' });
      await ready;
      if (!resumed) await fresh();
    })();
    await withTimeout(attempt, this.#connectTimeoutMs, 'connecting to the XMPP server');
    return resumed;
  }

  /** Closes what a failed attempt left open; best effort. */
  async drop(): Promise<void> {
    const x = this.#entity;
    if (x.status === 'disconnect' || x.status === 'offline') return;
    try {
      await withTimeout(x.disconnect(), 5000, 'closing the XMPP connection');
    } catch {
      // already broken
    }
  }

  /** An iq to our server; its errors as GatewayErrors. */
  async iq(type: 'get' | 'set', child: XmlElement, timeoutMs = 30_000): Promise<XmlElement | undefined> {
    try {
      const caller = this.#entity.iqCaller;
      const method = type === 'get' ? caller.get : caller.set;
      return await this.unlessDisconnected(method.call(caller, child, undefined, timeoutMs));
    } catch (err) {
      throw mapXmppError(err);
    }
  }

  /** An answer that can no longer come (the stream is gone) fails at once instead of at its timeout. */
  unlessDisconnected<T>(promise: Promise<T>): Promise<T> {
    const gone = this.#disconnected.promise.then(() => {
      throw new GatewayError('im.unreachable', 'the XMPP connection was lost', { retryable: true });
    });
    gone.catch(() => {});
    return Promise.race([promise, gone]);
  }
}

/**
 * One connection attempt of @xmpp/client (TCP, stream, SASL, bind, or the
 * resumption of the previous stream) and the life of the stream it opens.
 * Whatever waits on the server fails at once when the stream is lost,
 * instead of at its own timeout. Under the outbound policy an attempt tries
 * the checked destinations in order (destination.ts), the next one when a
 * TCP or TLS connect fails, as @xmpp/resolve does for the ones it finds.
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
  /**
   * Where to connect, best first (service URIs of checked addresses); without
   * it, the service the entity was made with.
   */
  destinations?: () => AsyncIterable<{ service: string }>;
}

export class Connection {
  readonly #entity: ConnectionEntity;
  readonly #domain: string;
  readonly #connectTimeoutMs: number;
  readonly #destinations?: () => AsyncIterable<{ service: string }>;
  #disconnected = deferred<void>();

  constructor(opts: ConnectionOptions) {
    this.#entity = opts.entity;
    this.#domain = opts.domain;
    this.#connectTimeoutMs = opts.connectTimeoutMs;
    this.#destinations = opts.destinations;
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
    const attempt = (async () => {
      await this.#connect();
      return this.#openStream(fresh);
    })();
    return withTimeout(attempt, this.#connectTimeoutMs, 'connecting to the XMPP server');
  }

  /** The TCP (or TLS) connection, to the first destination that takes it. */
  async #connect(): Promise<void> {
    const x = this.#entity;
    this.#disconnected = deferred<void>();
    if (!this.#destinations) return x.connect(x.options.service);
    let failure: unknown;
    for await (const { service } of this.#destinations()) {
      try {
        await x.connect(service);
        return;
      } catch (err) {
        failure = err;
        // The failed socket must be gone before the next one is attached.
        await x.disconnect().catch(() => {});
        this.#disconnected = deferred<void>();
      }
    }
    throw failure;
  }

  async #openStream(fresh: () => Promise<void>): Promise<boolean> {
    const x = this.#entity;
    let resumed = false;
    let settled = false;
    let cleanup = () => {};
    const ready = new Promise<void>((resolve, reject) => {
      const finish = (err?: unknown) => {
        if (settled) return;
        settled = true;
        cleanup();
        if (err === undefined) resolve();
        else reject(err);
      };
      const onOnline = () => finish();
      const onResumed = () => {
        resumed = true;
        finish();
      };
      const onError = (err: unknown) => finish(err ?? new Error('XMPP error'));
      cleanup = () => {
        x.off('online', onOnline);
        x.off('error', onError);
        x.streamManagement.off('resumed', onResumed);
      };
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
    try {
      // open() waits for the server's stream header until the library's own timeout, even
      // when the server has hung up meanwhile: a lost connection ends the wait at once.
      await Promise.race([x.open({ domain: this.#domain, lang: 'en' }), ready]);
      await ready;
    } finally {
      // open() can fail without an event `ready` hears (the library's own timeout for the
      // server's stream header): its listeners must not stay for the next attempt.
      if (!settled) {
        settled = true;
        cleanup();
      }
    }
    if (!resumed) await fresh();
    return resumed;
  }

  /** Closes what a failed attempt left open; best effort, bounded by the entity's disconnect() (stream-guard.ts). */
  async drop(): Promise<void> {
    const x = this.#entity;
    if (x.status === 'disconnect' || x.status === 'offline') return;
    try {
      await x.disconnect();
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

/**
 * The socket and parser under @xmpp/client, held to bounds the library does
 * not keep (issue #11 item 1: one hostile server crashed the whole process).
 *
 * - Input: the library feeds every 'data' chunk to its XML parser from the
 *   socket's event handler. Its parser (ltx) throws on bad input ("Illegal
 *   XML entity"), and the library drops the parser at its own close timeout
 *   while the socket still delivers data (`this.parser.write` of null): both
 *   were uncaught exceptions. Here a chunk is parsed only while the stream is
 *   ours and has a parser, a parser failure ends that stream with a typed
 *   error, and one top-level element (a stanza, or the stream header) may
 *   take at most `maxStanzaBytes` before the stream is torn down, so a
 *   server cannot make us buffer a 10 MB stanza. The bytes are decoded as
 *   one UTF-8 stream per socket (the library decoded each read on its own,
 *   so a character split between two reads became two U+FFFD).
 * - Teardown: the library's disconnect() waits on timers of its own (its
 *   `timeout` for the server's </stream:stream>, then for the socket's close)
 *   and acts on the entity when they fire, possibly in the middle of the next
 *   connection. It is replaced: a graceful close (XEP-0198's last ack, our
 *   </stream:stream>, the server's, FIN) gets `closeTimeoutMs`; after that,
 *   or at once when the stream is broken, every socket layer of the
 *   connection is destroyed (after STARTTLS the library holds @xmpp/tls's
 *   wrapper, which has no destroy(): the TLS socket inside it is), the
 *   listeners the library put on them are removed, and the entity is told
 *   the connection is gone. Nothing of that connection calls into us
 *   afterwards.
 * - Leftovers: when a connection is gone, what the library still waits for on
 *   its behalf is settled now rather than at its own timeouts, when another
 *   connection may be running: pending iq requests are rejected, a SASL
 *   exchange still listening for the server's answers stops listening, and
 *   waits that end on an 'error' of the entity get one.
 */
import type { EventEmitter } from 'node:events';
import { StringDecoder } from 'node:string_decoder';
import { GatewayError } from '../../../../device-protocol/errors.ts';
import { malformedStream } from './errors.ts';

type Listener = (...args: unknown[]) => void;

/** A socket as the library holds it: net.Socket, tls.TLSSocket, or @xmpp/tls's wrapper around one. */
export interface GuardedSocket extends Pick<EventEmitter, 'on' | 'off' | 'listeners' | 'eventNames'> {
  destroy?(error?: Error): unknown;
  end?(): unknown;
  /** @xmpp/tls's wrapper: the TLS socket inside it. */
  socket?: GuardedSocket | null;
  /** @xmpp/tls's wrapper: lets go of the TLS socket inside, with its own listeners. */
  _detachSocket?(): void;
  removeAllListeners(event?: string): unknown;
}

/** What the guard takes over of @xmpp/connection (its underscore methods are the ones its plugins use). */
export interface GuardedEntity
  extends Pick<EventEmitter, 'on' | 'off' | 'emit' | 'listeners' | 'listenerCount'> {
  socket: GuardedSocket | null;
  parser: { write(data: string): void; root?: { children: unknown[] } | null; cursor?: unknown } | null;
  status: string;
  iqCaller: { handlers?: Map<string, { reject(err: unknown): void }> };
  _onData(data: Buffer): void;
  _attachSocket(socket: GuardedSocket): void;
  _detachSocket(): void;
  _detachParser(): void;
  _status(status: string, ...args: unknown[]): void;
  connect(service?: string): Promise<void>;
  disconnect(): Promise<unknown>;
  write(data: string): Promise<void>;
  footer(el: unknown): string;
  footerElement(): unknown;
}

export interface StreamGuardOptions {
  entity: GuardedEntity;
  /** Bytes one top-level element from the server (a stanza, or the stream header) may take. */
  maxStanzaBytes: number;
  /** How long a graceful close may take before the socket is destroyed. */
  closeTimeoutMs: number;
  /** Runs right before our </stream:stream> (XEP-0198's last ack), within the close bound. */
  beforeClose?: () => Promise<unknown> | undefined;
}

const noop = () => {};
/**
 * The parser is fed at most this much at a time, so that the size limit is
 * checked between pieces of a chunk (a 64 KiB read can hold many small
 * stanzas, or the start of a huge one) and an element's bytes are known to
 * this precision.
 */
const SLICE_CHARS = 16 * 1024;

export class StreamGuard {
  readonly #entity: GuardedEntity;
  readonly #maxStanzaBytes: number;
  readonly #closeTimeoutMs: number;
  readonly #beforeClose?: () => Promise<unknown> | undefined;
  /** Every socket of the current connection, in the order the library attached them. */
  #layers: GuardedSocket[] = [];
  /** The listeners the library put on each of them. */
  readonly #attached = new Map<GuardedSocket, Array<[string | symbol, Listener]>>();
  /** The current connection was torn down (or there is none yet): its input is dropped. */
  #dead = true;
  /** Bytes received since the last complete top-level element (to a slice's precision). */
  #pending = 0;
  /** UTF-8 of the current socket: a character split across two reads stays whole. */
  #decoder = new StringDecoder('utf8');
  #closing?: Promise<void>;
  /** Listeners the session's plugins keep for good, as they were before the first connection. */
  #permanent?: { nonza: Set<Listener>; error: Set<Listener> };

  constructor(opts: StreamGuardOptions) {
    const x = (this.#entity = opts.entity);
    this.#maxStanzaBytes = opts.maxStanzaBytes;
    this.#closeTimeoutMs = opts.closeTimeoutMs;
    this.#beforeClose = opts.beforeClose;
    // The library binds `this._onData` once, at its first socket: these must be in place before.
    x._onData = (data: Buffer) => this.#onData(data);
    const attach = x._attachSocket;
    x._attachSocket = (socket: GuardedSocket) => this.#attach(attach, socket);
    const connect = x.connect;
    x.connect = (service?: string) => {
      this.#begin();
      return connect.call(x, service);
    };
    // Every close goes through here, the library's own (a stream error, a parser error, stop()) too.
    x.disconnect = () => this.close();
    x.on('element', () => {
      this.#pending = 0;
    });
    x.on('open', () => {
      this.#pending = 0;
    });
    x.on('disconnect', () => this.#settle());
  }

  /** The current connection was torn down (or none was made yet). */
  get closed(): boolean {
    return this.#dead;
  }

  /**
   * Closes the stream: gracefully within `closeTimeoutMs` when it is open,
   * then (or at once) destroys every socket layer. Resolves once the entity
   * has been told the connection is gone; never rejects.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close().finally(() => {
      this.#closing = undefined;
    });
    return this.#closing;
  }

  async #close(): Promise<void> {
    const x = this.#entity;
    const open =
      !this.#dead && x.socket !== null && x.parser !== null && (x.status === 'open' || x.status === 'online');
    if (open) {
      const waits: Array<() => void> = [];
      const until = (statuses: string[]) =>
        new Promise<void>((resolve) => {
          const onStatus = (status: string) => {
            if (statuses.includes(status)) resolve();
          };
          x.on('status', onStatus);
          waits.push(() => x.off('status', onStatus));
        });
      let timer: NodeJS.Timeout | undefined;
      const bound = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, this.#closeTimeoutMs);
      });
      const polite = (async () => {
        await this.#beforeClose?.();
        await x.write(x.footer(x.footerElement()));
        x._status('closing');
        // The server's </stream:stream> ('close') or its hang-up ('disconnect').
        if (!this.#dead) await until(['close', 'disconnect']);
        if (!this.#dead && x.socket) {
          x.socket.end?.();
          await until(['disconnect']);
        }
      })();
      await Promise.race([polite, bound]).catch(noop);
      clearTimeout(timer);
      for (const stop of waits) stop();
    }
    this.#teardown(new GatewayError('im.unreachable', 'the XMPP connection was closed', { retryable: true }));
  }

  #begin(): void {
    const x = this.#entity;
    this.#permanent ??= {
      nonza: new Set(x.listeners('nonza') as Listener[]),
      error: new Set(x.listeners('error') as Listener[]),
    };
    this.#dead = false;
    this.#pending = 0;
    this.#layers = [];
    this.#attached.clear();
  }

  #attach(attach: (socket: GuardedSocket) => void, socket: GuardedSocket): void {
    if (this.#dead) {
      // A socket that comes up after its connection was torn down (a TLS upgrade finishing late).
      destroyAll([socket]);
      return;
    }
    const before = new Map(socket.eventNames().map((e) => [e, new Set(socket.listeners(e) as Listener[])]));
    attach.call(this.#entity, socket);
    const added: Array<[string | symbol, Listener]> = [];
    for (const event of socket.eventNames()) {
      const had = before.get(event);
      for (const l of socket.listeners(event) as Listener[]) if (!had?.has(l)) added.push([event, l]);
    }
    this.#layers.push(socket);
    this.#attached.set(socket, added);
    this.#decoder = new StringDecoder('utf8');
  }

  /** What the library's own _onData does (decode, parse), within the limits. */
  #onData(data: Buffer): void {
    const x = this.#entity;
    // A late chunk of a connection we gave up on, or one between the library's parsers.
    if (this.#dead || x.parser === null) return;
    const text = this.#decoder.write(data);
    for (let at = 0; at < text.length; at += SLICE_CHARS) {
      const parser = x.parser;
      if (this.#dead || parser === null) return;
      const slice = text.length <= SLICE_CHARS ? text : text.slice(at, at + SLICE_CHARS);
      this.#pending += Buffer.byteLength(slice);
      if (this.#pending > this.#maxStanzaBytes) {
        this.#fail(malformedStream(new Error(`a top-level element passed ${this.#maxStanzaBytes} bytes`)));
        return;
      }
      try {
        parser.write(slice);
      } catch (err) {
        this.#fail(malformedStream(err));
        return;
      }
      // ltx hands the whitespace between stanzas (keepalives) to the stream's root element,
      // which keeps it for the life of the stream; nothing reads it.
      if (parser.root && parser.cursor === parser.root) parser.root.children.length = 0;
    }
  }

  /** The server broke the stream: the attempt in flight fails with `error`, and nothing is sent back. */
  #fail(error: GatewayError): void {
    if (this.#dead) return;
    const x = this.#entity;
    if (x.listenerCount('error') > 0) x.emit('error', error);
    this.#teardown(error);
  }

  #teardown(reason: GatewayError): void {
    if (this.#dead) return;
    this.#dead = true;
    const x = this.#entity;
    for (const [socket, listeners] of this.#attached) {
      for (const [event, listener] of listeners) socket.off(event, listener);
    }
    const sockets: GuardedSocket[] = [];
    for (const layer of this.#layers) {
      if (typeof layer.destroy === 'function') sockets.push(layer);
      else if (layer.socket) {
        const inner = layer.socket;
        layer._detachSocket?.();
        sockets.push(inner);
      }
    }
    this.#layers = [];
    this.#attached.clear();
    // Outermost first: the TLS socket before the TCP socket it runs on.
    destroyAll(sockets.reverse(), reason);
    if (x.parser !== null) x._detachParser();
    if (x.socket !== null) x._detachSocket();
    x._status('disconnect', { clean: false, reason });
    const permanent = this.#permanent;
    const waiting = permanent && (x.listeners('error') as Listener[]).some((l) => !permanent.error.has(l));
    if (waiting) x.emit('error', reason);
  }

  /** The connection is gone: what the library still waits for on its behalf ends now. */
  #settle(): void {
    const x = this.#entity;
    const handlers = x.iqCaller.handlers;
    if (handlers && handlers.size > 0) {
      const lost = new GatewayError('im.unreachable', 'the XMPP connection was lost', { retryable: true });
      const pending = [...handlers.values()];
      handlers.clear();
      for (const d of pending) d.reject(lost);
    }
    const permanent = this.#permanent;
    if (permanent) {
      for (const l of x.listeners('nonza') as Listener[]) if (!permanent.nonza.has(l)) x.off('nonza', l);
    }
  }
}

/** Destroys sockets so that nothing they do later can throw: a late 'error' has a listener, 'data' has none. */
function destroyAll(sockets: GuardedSocket[], reason?: Error): void {
  for (const s of sockets) {
    s.removeAllListeners('data');
    s.on('error', noop);
    try {
      s.destroy?.(reason);
    } catch {
      // already gone
    }
  }
}

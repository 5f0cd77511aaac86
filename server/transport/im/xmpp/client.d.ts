// @xmpp/client 0.14 ships no type declarations; these cover what the IM transport uses.
declare module '@xmpp/client' {
  import type { EventEmitter } from 'node:events';

  export interface XmlElement {
    name: string;
    attrs: Record<string, string | undefined>;
    children: Array<XmlElement | string>;
    parent?: XmlElement | null;
    is(name: string, xmlns?: string): boolean;
    getChild(name: string, xmlns?: string): XmlElement | undefined;
    getChildren(name: string, xmlns?: string): XmlElement[];
    getChildElements(): XmlElement[];
    getChildText(name: string, xmlns?: string): string | null;
    getText(): string;
    text(): string;
    append(...children: Array<XmlElement | string>): XmlElement;
    toString(): string;
  }

  export type XmlChild = XmlElement | string | undefined | null | false;
  export function xml(
    name: string,
    attrs?: Record<string, string | number | undefined> | null,
    ...children: Array<XmlChild | XmlChild[]>
  ): XmlElement;

  export interface Jid {
    local: string;
    domain: string;
    resource: string;
    bare(): Jid;
    toString(): string;
  }
  export function jid(address: string): Jid;
  export function jid(local: string, domain: string, resource?: string): Jid;

  export interface StreamManagement extends EventEmitter {
    enabled: boolean;
    enableSent: boolean;
    id: string;
    outbound_q: Array<{ stanza: XmlElement; stamp: string }>;
    /** Stanzas the server acknowledged on the current stream. */
    outbound: number;
    /** Stanzas received on the current stream (the 'h' of our acks). */
    inbound: number;
    timeout: number;
    requestAckInterval: number;
    requestAckDebounce: number;
  }

  export interface IqCaller {
    /** Requests awaiting their answer, by stanza id. */
    handlers: Map<string, { reject(err: unknown): void }>;
    request(stanza: XmlElement, timeoutMs?: number): Promise<XmlElement>;
    get(element: XmlElement, to?: string, timeoutMs?: number): Promise<XmlElement | undefined>;
    set(element: XmlElement, to?: string, timeoutMs?: number): Promise<XmlElement | undefined>;
  }

  export interface IqCallee {
    get(
      ns: string,
      name: string,
      handler: (ctx: { stanza: XmlElement; element: XmlElement; from?: string }) => unknown,
    ): void;
    set(
      ns: string,
      name: string,
      handler: (ctx: { stanza: XmlElement; element: XmlElement; from?: string }) => unknown,
    ): void;
  }

  /** net.Socket for TCP, @xmpp/tls's wrapper after STARTTLS. */
  export interface XmppSocket extends EventEmitter {
    write(data: string | Uint8Array, ...rest: any[]): unknown;
    end(): void;
    /** net.Socket and tls.TLSSocket; @xmpp/tls's wrapper has none. */
    destroy?(error?: Error): unknown;
    /** @xmpp/tls's wrapper: the TLS socket inside it. */
    socket?: XmppSocket | null;
    /** @xmpp/tls's wrapper: lets go of the TLS socket inside. */
    _detachSocket?(): void;
  }

  export interface XmppClient extends EventEmitter {
    /** The socket of the current connection; null while there is none. */
    socket: XmppSocket | null;
    iqCallee: IqCallee;
    status: string;
    jid: Jid | null;
    timeout: number;
    options: { service?: string; domain?: string; lang?: string };
    streamManagement: StreamManagement;
    iqCaller: IqCaller;
    reconnect: { stop(): void; start(): void; delay: number };
    start(): Promise<Jid>;
    stop(): Promise<unknown>;
    connect(service?: string): Promise<void>;
    open(opts: { domain?: string; lang?: string }): Promise<unknown>;
    disconnect(): Promise<unknown>;
    send(element: XmlElement): Promise<void>;
    write(data: string): Promise<void>;
    // Internals of @xmpp/connection that its own plugins use too (starttls, resolve),
    // taken over by the session's stream guard (stream-guard.ts) and destination.ts.
    /** The stream's XML parser; null between streams. */
    parser: { write(data: string): void; root?: { children: unknown[] } | null; cursor?: unknown } | null;
    _onData(data: Buffer): void;
    _attachSocket(socket: XmppSocket): void;
    _detachSocket(): void;
    _detachParser(): void;
    _status(status: string, ...args: unknown[]): void;
    _onSeeOtherHost(error: Error): unknown;
    socketParameters(service: string): Record<string, unknown> | undefined;
    footer(el: unknown): string;
    footerElement(): unknown;
  }

  export interface ClientOptions {
    service?: string;
    domain?: string;
    resource?: string;
    username?: string;
    password?: string;
    lang?: string;
    timeout?: number;
  }

  export function client(options: ClientOptions): XmppClient;
}

/**
 * The Handset SDK: one persistent session with the gateway, for Node and
 * browsers (no `node:` imports).
 *
 * What it does for the application (SPEC.md §4, §5):
 * - authenticates with Hello (IMEI + secret, or a token), then keeps the
 *   session: Ping every `heartbeatMs` (the Welcome's), and a carrier that
 *   stays silent for 2× that is treated as dead;
 * - several gateway URLs (`urls`): tried in turn with backoff, starting at
 *   the last one that worked, moving on when one refuses, times out or
 *   freezes; a Resume on another edge continues the session there;
 * - acks cumulatively (every 100 frames, or `ackIntervalMs` after receiving);
 * - reconnects with exponential backoff and jitter (after a Bye
 *   session.draining: at most 1 s apart for 30 s, the node is restarting),
 *   and Resumes with the last seq it saw, so the gateway replays exactly what is missing; if the session
 *   cannot be resumed it starts a new one and says so (`connected` with
 *   `resumed: false`);
 * - drops any sequenced frame it already delivered: the application sees each
 *   event and each answer once, in order;
 * - resends pending requests with the same id after a reconnect, until answered;
 * - 'auto' transport: WebSocket first, long-poll when WebSocket does not open;
 *   switchTransport() moves the same session between carriers;
 * - compact body encodings as plugins (`plugins`, handset-plugin.ts): by
 *   default the compact mail headers and chat forms, turned back into the
 *   documented shapes before the application sees them.
 *
 * The decisions live in the state machine of handset-session.ts; this file
 * is its shell: it owns the carriers and the timers, feeds the machine what
 * happens and performs the effects it returns, in order.
 */

import {
  type Carrier,
  type CarrierHandlers,
  type CarrierKind,
  type CarrierOptions,
  carrierUrl,
} from './carriers/carrier.ts';
import { type CaCertificates, caFetch } from './carriers/ca-fetch.ts';
import { PollCarrier } from './carriers/poll-carrier.ts';
import { WebSocketCarrier } from './carriers/websocket-carrier.ts';
import { TypedEmitter } from './emitter.ts';
import { GatewayError } from './errors.ts';
import type { HandsetPlugin } from './handset-plugin.ts';
import { HandsetSession } from './handset-session.ts';
import type {
  HandsetEvents,
  NativePushChannel,
  PushRegistrationInfo,
  SessionEffect,
  SessionInput,
  SessionSettings,
  TimerKey,
  WebPushSubscription,
} from './handset-types.ts';
import { imCompactPlugin } from './im-compact.ts';
import { mailHeadersPlugin } from './mail-headers.ts';
import type { Hello, Resume, Value, Welcome } from './messages.ts';

export type { CarrierKind } from './carriers/carrier.ts';
export { Carrier, carrierUrl } from './carriers/carrier.ts';
export { PollCarrier } from './carriers/poll-carrier.ts';
export { WebSocketCarrier } from './carriers/websocket-carrier.ts';
export { TypedEmitter } from './emitter.ts';
export type { HandsetPlugin, RequestRewrite } from './handset-plugin.ts';
export { type BackoffOptions, backoffDelay } from './backoff.ts';
export { errorFromFrame, HandsetSession } from './handset-session.ts';
export type {
  EmitEffect,
  HandsetConnectedEvent,
  HandsetDisconnectedEvent,
  HandsetEvents,
  HandsetPushEvent,
  HandsetReconnectingEvent,
  HandsetSessionOptions,
  NativePushChannel,
  PushRegistrationInfo,
  SessionEffect,
  SessionInput,
  SessionSettings,
  TimerKey,
  TransportMode,
  WebPushSubscription,
} from './handset-types.ts';
export { imCompactPlugin } from './im-compact.ts';
export { mailHeadersPlugin } from './mail-headers.ts';

export interface HandsetOptions extends SessionSettings {
  /** ws://host:port, wss://, http://host:port or https:// (base; carriers derive /v1/ws and /v1/poll). */
  url?: string;
  /**
   * Several gateway URLs (edges without a load balancer), each like `url`;
   * `url` too, if given, comes first. At least one of the two is required.
   */
  urls?: readonly string[];
  /** WebSocket constructor; default globalThis.WebSocket (Node 20 lacks it: pass the `ws` package). */
  WebSocket?: any;
  /** Default globalThis.fetch (with `ca` in Node: node:https trusting it, carriers/ca-fetch.ts). */
  fetch?: typeof fetch;
  /**
   * Node: PEM CA certificate(s) to trust for wss:// and https:// instead of Node's built-in list (a
   * gateway with a private CA). The WebSocket carrier hands it to the `ws` package (pass it as
   * `WebSocket`); the long-poll carrier uses node:https. Browsers ignore it: the platform's trust
   * applies there (install the CA in the system or browser).
   */
  ca?: CaCertificates;
  /** How long a long-poll GET may be held. Default 25000. */
  pollWaitMs?: number;
  /**
   * The body encodings this handset asks for and expands, in order. Default:
   * mailHeadersPlugin and imCompactPlugin (less those turned off below).
   * Given, it replaces the default list and the two switches below are ignored.
   */
  plugins?: readonly HandsetPlugin[];
  /**
   * `mail.sync` without a `compact` field goes on the wire as `compact: true`
   * (field names once, not per message) and resolves with `items` as usual
   * (mailHeadersPlugin, mail-headers.ts). false: send it as given. Default true.
   */
  compactMailHeaders?: boolean;
  /**
   * Ask for the compact chat forms (SPEC.md §9: Hello caps `encodings`
   * gets `im.compact`, `im.roster` goes out with `compact: true`) and turn
   * them back into the documented events and answers (imCompactPlugin,
   * im-compact.ts), so the application sees the same shapes for fewer
   * bytes. Default true.
   */
  compactIm?: boolean;
  /** Injectable for tests. Default Math.random. */
  random?: () => number;
  /** Injectable for tests. Default Date.now. */
  now?: () => number;
}

export interface RequestOptions {
  /** Client id; unique per device. Default: generated. */
  id?: string;
  /** Default requestTimeoutMs. The time spent reconnecting counts. */
  timeoutMs?: number;
}

/** The plugins of a Handset built with `options`. */
export function handsetPlugins(
  options: Pick<HandsetOptions, 'plugins' | 'compactMailHeaders' | 'compactIm'>,
) {
  if (options.plugins !== undefined) return options.plugins;
  const plugins: HandsetPlugin[] = [];
  if (options.compactMailHeaders !== false) plugins.push(mailHeadersPlugin);
  if (options.compactIm !== false) plugins.push(imCompactPlugin);
  return plugins;
}

/** The longest delay setTimeout takes (a heartbeat from the gateway may ask for more). */
const MAX_TIMER_MS = 2 ** 31 - 1;

interface CallSettlers {
  resolve(value: unknown): void;
  reject(err: GatewayError): void;
}

export class Handset {
  readonly #emitter = new TypedEmitter<HandsetEvents>();
  readonly #session: HandsetSession;
  readonly #now: () => number;
  /** Without the URL: each carrier gets the one its open effect names. */
  readonly #carrierOptions: Omit<CarrierOptions, 'url'>;

  readonly #carriers = new Map<number, Carrier>();
  readonly #timers = new Map<TimerKey, ReturnType<typeof setTimeout>>();
  readonly #calls = new Map<number, CallSettlers>();
  #nextCall = 1;
  #connect?: Promise<Welcome>;

  /** Inputs that arrived while a step's effects were being performed (a listener calling in). */
  readonly #queue: SessionInput[] = [];
  #stepping = false;
  /** Carrier closes started by the step under way: close() waits for them. */
  readonly #stepCloses: Promise<void>[] = [];

  constructor(options: HandsetOptions) {
    const urls = gatewayUrls(options);
    if (typeof options.imei !== 'string' || options.imei === '') {
      throw new GatewayError('config.invalid', 'imei is required', { field: 'imei' });
    }
    this.#now = options.now ?? Date.now;
    this.#session = new HandsetSession({
      ...options,
      urls,
      plugins: handsetPlugins(options),
      now: this.#now,
      random: options.random ?? Math.random,
    });
    this.#carrierOptions = {
      WebSocket: options.WebSocket,
      fetch: options.fetch ?? (options.ca === undefined ? undefined : caFetch(options.ca)),
      ...(options.ca === undefined ? {} : { ca: options.ca }),
      requestTimeoutMs: options.requestTimeoutMs ?? 30_000,
      pollWaitMs: options.pollWaitMs ?? 25_000,
      lastSeq: () => this.#session.lastSeq,
    };
  }

  get sessionId(): string | undefined {
    return this.#session.sessionId;
  }

  /** The carrier of the live session; undefined while disconnected. */
  get transport(): CarrierKind | undefined {
    return this.#session.transport;
  }

  /** The highest seq delivered to the application in this session. */
  get lastSeq(): number {
    return this.#session.lastSeq;
  }

  /** The last Welcome (heartbeat, limits, token). */
  get welcome(): Welcome | undefined {
    return this.#session.welcome;
  }

  /** The gateway URL of the live session, or of the next attempt while disconnected. */
  get url(): string {
    return this.#session.url;
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
    if (this.#session.closed) return this.#call((call) => ({ type: 'connect', call }));
    this.#connect ??= this.#call((call) => ({ type: 'connect', call }));
    return this.#connect;
  }

  /**
   * Sends a request and resolves with the response body. Until answered it is
   * resent with the same id after every reconnect (the gateway answers a
   * repeated id from memory). Rejects with the GatewayError of an Error frame,
   * 'request.timeout' after timeoutMs, or 'session.closed'.
   */
  request<T = Value>(method: string, body?: Value, opts: RequestOptions = {}): Promise<T> {
    return this.#call((call) => ({
      type: 'request',
      call,
      method,
      body,
      id: opts.id,
      timeoutMs: opts.timeoutMs,
    }));
  }

  /** The gateway's VAPID public key (base64url): a browser subscribes with it (applicationServerKey). */
  async pushVapidKey(): Promise<string> {
    return (await this.request<{ key: string }>('push.vapid')).key;
  }

  /**
   * Registers a wake-up channel of this device: a Web Push subscription, or an FCM / APNs token or
   * an SMS number where the gateway enabled the kind; resolves with its id (the same for the same channel).
   */
  async registerPush(channel: WebPushSubscription | NativePushChannel): Promise<string> {
    const body: Value =
      'kind' in channel
        ? nativeChannelBody(channel)
        : {
            kind: 'webpush',
            endpoint: channel.endpoint,
            keys: { p256dh: channel.keys.p256dh, auth: channel.keys.auth },
          };
    return (await this.request<{ id: string }>('push.register', body)).id;
  }

  /** The device's wake-up channels. */
  async listPush(): Promise<PushRegistrationInfo[]> {
    return (await this.request<{ registrations: PushRegistrationInfo[] }>('push.list')).registrations;
  }

  /** Removes a wake-up channel; rejects with push.not_found for an id the device does not have. */
  async unregisterPush(id: string): Promise<void> {
    await this.request('push.unregister', { id });
  }

  /** Round trip of a Ping in milliseconds; waits for a connection if there is none. */
  ping(): Promise<number> {
    return this.#call((call) => ({ type: 'ping', call }));
  }

  /**
   * Moves the session to the other carrier (Resume on it; the gateway sends
   * the old one Bye session.moved). Also pins the transport: no more
   * automatic fallback.
   */
  switchTransport(kind: 'ws' | 'poll'): Promise<void> {
    return this.#call((call) => ({ type: 'switch', call, kind }));
  }

  /** Ends the session on this side: acks what was received, closes the carrier, rejects what is pending. */
  close(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const call = this.#nextCall++;
      this.#calls.set(call, {
        // Settled in the step that closed the carriers: wait until they are down.
        resolve: () => void Promise.all([...this.#stepCloses]).then(() => resolve(), reject),
        reject,
      });
      this.#dispatch({ type: 'close', call });
    });
  }

  #call<T>(input: (call: number) => SessionInput): Promise<T> {
    const call = this.#nextCall++;
    const settled = new Promise<T>((resolve, reject) => {
      this.#calls.set(call, { resolve: resolve as (value: unknown) => void, reject });
    });
    this.#dispatch(input(call));
    return settled;
  }

  // ---- the machine ----------------------------------------------------------

  /**
   * Runs one input through the machine and performs its effects. An input
   * that arrives meanwhile (an event listener calling close(), request() …)
   * waits its turn, so effects are performed in the order the machine chose.
   */
  #dispatch(input: SessionInput): void {
    if (this.#stepping) {
      this.#queue.push(input);
      return;
    }
    this.#stepping = true;
    try {
      let next: SessionInput | undefined = input;
      while (next !== undefined) {
        if (this.#stepCloses.length > 0) this.#stepCloses.length = 0;
        const effects = this.#session.step(next);
        for (let i = 0; i < effects.length; i++) this.#perform(effects[i]!);
        next = this.#queue.shift();
      }
    } finally {
      this.#stepping = false;
    }
  }

  #perform(effect: SessionEffect): void {
    switch (effect.type) {
      case 'send':
        this.#carriers.get(effect.carrier)?.send(effect.frame);
        return;
      case 'emit':
        if (effect.name === 'event') {
          // Through the microtask queue, like the answers to requests (promise
          // reactions): an application sees answers and events in seq order.
          const { payload } = effect;
          queueMicrotask(() => this.#emitter.emit('event', payload));
        } else {
          this.#emitter.emit(effect.name, effect.payload as never);
        }
        return;
      case 'resolve':
      case 'reject': {
        const settlers = this.#calls.get(effect.call);
        if (settlers === undefined) return;
        this.#calls.delete(effect.call);
        if (effect.type === 'resolve') settlers.resolve(effect.value);
        else settlers.reject(effect.error);
        return;
      }
      case 'schedule': {
        const { timer } = effect;
        const old = this.#timers.get(timer);
        if (old !== undefined) clearTimeout(old);
        const handle = setTimeout(
          () => {
            this.#timers.delete(timer);
            this.#dispatch({ type: 'timer', timer });
          },
          // Beyond the cap setTimeout would fire at once: such a timer fires at the cap instead
          // (a heartbeat's re-arms itself there; nothing else is set that far by the gateway).
          Math.min(MAX_TIMER_MS, Math.max(0, effect.at - this.#now())),
        );
        this.#timers.set(timer, handle);
        return;
      }
      case 'cancel': {
        const handle = this.#timers.get(effect.timer);
        if (handle !== undefined) clearTimeout(handle);
        this.#timers.delete(effect.timer);
        return;
      }
      case 'open':
        this.#open(effect.carrier, effect.kind, effect.url, effect.first);
        return;
      case 'close': {
        const carrier = this.#carriers.get(effect.carrier);
        if (carrier === undefined) return;
        this.#carriers.delete(effect.carrier);
        this.#stepCloses.push(carrier.close());
        return;
      }
    }
  }

  #open(id: number, kind: CarrierKind, url: string, first: Hello | Resume): void {
    const handlers: CarrierHandlers = {
      onFrame: (frame) => this.#dispatch({ type: 'frame', carrier: id, frame }),
      onClose: (info) => this.#dispatch({ type: 'carrier-closed', carrier: id, info }),
      onAck: (seq) => this.#dispatch({ type: 'carrier-acked', carrier: id, seq }),
    };
    const options: CarrierOptions = { ...this.#carrierOptions, url };
    const carrier =
      kind === 'ws' ? new WebSocketCarrier(options, handlers) : new PollCarrier(options, handlers);
    this.#carriers.set(id, carrier);
    carrier.start(first);
  }
}

/** `url` then `urls`, without repeats; config.invalid when there is none, or one is not a gateway URL. */
export function gatewayUrls(options: Pick<HandsetOptions, 'url' | 'urls'>): string[] {
  const given: unknown[] = [];
  if (options?.url !== undefined) given.push(options.url);
  if (options?.urls !== undefined) {
    if (!Array.isArray(options.urls)) {
      throw new GatewayError('config.invalid', 'urls must be a list of URLs', { field: 'urls' });
    }
    given.push(...options.urls);
  }
  const urls: string[] = [];
  for (const url of given) {
    if (typeof url !== 'string' || url === '') {
      throw new GatewayError('config.invalid', 'a gateway URL must be a non-empty string', {
        field: 'url',
      });
    }
    // Checked here, not at the first attempt: one bad URL in a list would otherwise only show when its turn came.
    carrierUrl(url, 'ws');
    if (!urls.includes(url)) urls.push(url);
  }
  if (urls.length === 0) throw new GatewayError('config.invalid', 'url is required', { field: 'url' });
  return urls;
}

/** The push.register body of a native channel: only the fields of its kind. */
function nativeChannelBody(channel: NativePushChannel): Value {
  if (channel.kind === 'fcm') return { kind: 'fcm', token: channel.token };
  if (channel.kind === 'sms') return { kind: 'sms', msisdn: channel.msisdn };
  return { kind: 'apns', token: channel.token, topic: channel.topic };
}

/**
 * One XMPP account's client session on the transport node (@xmpp/client):
 * SASL, resource binding, stream management (XEP-0198), carbons (XEP-0280),
 * roster, presence, message archive catch-up (XEP-0313) and client state
 * indication (XEP-0352). It reconnects by itself with exponential backoff and
 * jitter (the library's fixed-delay reconnect is switched off) and reports its
 * state through the listener: connecting → online → retrying → online …, or
 * auth_failed (terminal).
 *
 * What it sends is acknowledged only after the server's stream-management ack;
 * a message whose stream died before the ack is sent again once the session is
 * back, with the same id and origin-id, so a receiver can recognise a resend.
 */
import { randomBytes } from 'node:crypto';
import { client, type XmlElement, type XmppClient, jid as parseJid, xml } from '@xmpp/client';
import type { Logger } from 'pino';
import { GatewayError } from '../../../device-protocol/errors.ts';
import { applyScramSpeedup } from './scram-speedup.ts';
import { mapXmppError } from './xmpp-errors.ts';

applyScramSpeedup();

export const NS = {
  stream: 'http://etherx.jabber.org/streams',
  sm: 'urn:xmpp:sm:3',
  carbons: 'urn:xmpp:carbons:2',
  forward: 'urn:xmpp:forward:0',
  mam: 'urn:xmpp:mam:2',
  rsm: 'http://jabber.org/protocol/rsm',
  sid: 'urn:xmpp:sid:0',
  delay: 'urn:xmpp:delay',
  roster: 'jabber:iq:roster',
  csi: 'urn:xmpp:csi:0',
  receipts: 'urn:xmpp:receipts',
  chatstates: 'http://jabber.org/protocol/chatstates',
  dataForm: 'jabber:x:data',
  hints: 'urn:xmpp:hints',
} as const;

export type XmppAccountState = 'connecting' | 'online' | 'retrying' | 'auth_failed' | 'stopped';
export type PresenceShow = 'available' | 'away' | 'chat' | 'dnd' | 'xa' | 'unavailable';
export type SubscriptionKind = 'subscribe' | 'subscribed' | 'unsubscribe' | 'unsubscribed';
/** XEP-0085 chat states. */
export type ChatState = 'active' | 'composing' | 'paused' | 'inactive' | 'gone';
export const CHAT_STATES: readonly ChatState[] = ['active', 'composing', 'paused', 'inactive', 'gone'];

export interface XmppAccountSettings {
  /** Bare JID of the account. */
  jid: string;
  password: string;
  /** Server address; without it the domain's SRV records (then A/AAAA) are used. */
  host?: string;
  port?: number;
  resource?: string;
}

export interface ChatMessage {
  /** Bare JIDs. */
  from: string;
  to: string;
  body: string;
  /** Archive id the server gave the message (XEP-0359 stanza-id by our account, or the MAM result id). */
  stanzaId?: string;
  /** The sender's id for the message (XEP-0359 origin-id), the clientId when a gateway device sent it. */
  originId?: string;
  /** ISO 8601. */
  at: string;
  direction: 'in' | 'out';
  /** Delivered as a carbon copy of another client's traffic. */
  carbon?: boolean;
  /** The body was cut to the session's limit. */
  truncated?: boolean;
}

export interface ContactPresence {
  jid: string;
  show: PresenceShow;
  status?: string;
}

export interface RosterItem {
  jid: string;
  name?: string;
  groups: string[];
  subscription: string;
  /** 'subscribe' while our subscription request is pending. */
  ask?: string;
  presence: PresenceShow;
  status?: string;
}

export interface ArchivePage {
  messages: ChatMessage[];
  /** Archive id of the last message of this page (the cursor for the next call). */
  last?: string;
  /** No more messages after `last` at the time of the query. */
  complete: boolean;
}

export interface XmppSessionListener {
  state(state: XmppAccountState, error?: GatewayError): void;
  message(message: ChatMessage): void;
  presence(presence: ContactPresence): void;
  subscription(from: string, kind: SubscriptionKind): void;
  /** Roster items changed by a server push; removed items have subscription 'remove'. */
  roster(items: RosterItem[]): void;
  /** A contact's client confirmed delivery of our message `id` (XEP-0184; id = our clientId). */
  receipt(from: string, id: string): void;
  /** A contact is typing (or stopped) (XEP-0085). */
  typing(from: string, state: ChatState): void;
  /** The server acknowledged a message we sent (`bodyBytes` of UTF-8 body). */
  sent(clientId: string, bodyBytes: number): void;
}

export interface XmppAccountSessionOptions {
  settings: XmppAccountSettings;
  listener?: Partial<XmppSessionListener>;
  logger?: Pick<Logger, 'debug' | 'info' | 'warn'>;
  now?: () => number;
  /** In [0, 1); injected for tests. */
  random?: () => number;
  /** Reconnect delay: initial, doubled per failed attempt up to max, then ±50 % jitter. */
  backoff?: { initialMs?: number; maxMs?: number };
  /** One connection attempt (TCP, stream, SASL, bind) must finish within this. Default 15 s. */
  connectTimeoutMs?: number;
  /** How long a send waits for the server's ack, reconnects included. Default 60 s. */
  sendTimeoutMs?: number;
  /** Bodies longer than this (UTF-16 units) are cut and flagged. Default 64 Ki. */
  maxBodyChars?: number;
  /** XEP-0198 ack request interval; default 30 s. */
  smRequestAckIntervalMs?: number;
  /** How soon after a send the server is asked for an ack (batches bursts). Default 250 ms. */
  smAckDebounceMs?: number;
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

interface ResourcePresence {
  show: PresenceShow;
  status?: string;
  priority: number;
}

const SHOWS = new Set(['away', 'chat', 'dnd', 'xa']);
const SHOW_RANK: Record<PresenceShow, number> = {
  chat: 5,
  available: 4,
  away: 3,
  xa: 2,
  dnd: 1,
  unavailable: 0,
};
// XML 1.0 forbids most C0 controls, but a server may pass on character references; never hand them on.
// biome-ignore lint/suspicious/noControlCharactersInRegex: that is the point
const CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/g;

/**
 * Bare JIDs of addresses seen lately. @xmpp/jid parses with XEP-0106 escape
 * detection, twice per call (parse, then bare()): on the relay path that was
 * a tenth of the gateway's CPU, and the same few addresses come back on every
 * stanza. Bounded in entries and key length, so a hostile peer cannot grow it.
 */
const bareCache = new Map<string, string>();
const BARE_CACHE_ENTRIES = 10_000;
const BARE_CACHE_KEY_CHARS = 256;

export function bareJid(address: string | undefined): string {
  if (!address) return '';
  const cached = bareCache.get(address);
  if (cached !== undefined) return cached;
  const bare = parseBareJid(address);
  if (address.length <= BARE_CACHE_KEY_CHARS) {
    if (bareCache.size >= BARE_CACHE_ENTRIES) bareCache.clear();
    bareCache.set(address, bare);
  }
  return bare;
}

function parseBareJid(address: string): string {
  try {
    const parsed = parseJid(address);
    if (!parsed.domain || parsed.domain.includes('@')) return '';
    return parsed.bare().toString();
  } catch {
    return '';
  }
}

/** Characters XML 1.0 cannot carry (a server would close the stream on them). */
export function hasControlChars(text: string): boolean {
  return text.search(CONTROL) >= 0;
}

export function sanitizeText(text: string, maxChars: number): { text: string; truncated: boolean } {
  let out = text.replace(CONTROL, '');
  let truncated = false;
  if (out.length > maxChars) {
    out = out.slice(0, maxChars);
    // Do not leave half a surrogate pair at the cut.
    const last = out.charCodeAt(out.length - 1);
    if (last >= 0xd800 && last <= 0xdbff) out = out.slice(0, -1);
    truncated = true;
  }
  return { text: out, truncated };
}

function deferred<T>(): { promise: Promise<T>; resolve: (v: T) => void; reject: (e: unknown) => void } {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(new GatewayError('im.unreachable', `${what} took longer than ${ms} ms`, { retryable: true })),
      ms,
    );
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export class XmppAccountSession {
  readonly jid: string;
  readonly #settings: XmppAccountSettings;
  readonly #listener: Partial<XmppSessionListener>;
  readonly #logger?: Pick<Logger, 'debug' | 'info' | 'warn'>;
  readonly #now: () => number;
  readonly #random: () => number;
  readonly #backoffInitial: number;
  readonly #backoffMax: number;
  readonly #connectTimeoutMs: number;
  readonly #sendTimeoutMs: number;
  readonly #maxBodyChars: number;
  readonly #xmpp: XmppClient;
  readonly #domain: string;

  #state: XmppAccountState = 'stopped';
  #stopped = false;
  #everOnline = false;
  #attempt = 0;
  #running?: Promise<void>;
  #first = deferred<void>();
  #bytesIn = 0;
  #bytesOut = 0;
  #disconnected = deferred<void>();
  #smSettled = deferred<void>();
  #smOffered = false;
  #awaitingResume = false;
  #ackTimer: NodeJS.Immediate | undefined;
  #csiOffered = false;
  #inactive = false;
  #wake?: () => void;
  #lastErrorCode?: string;
  #ownPresence: { show: PresenceShow; status?: string } = { show: 'available' };
  readonly #roster = new Map<string, RosterItem>();
  readonly #resources = new Map<string, Map<string, ResourcePresence>>();
  readonly #pending = new Map<string, PendingSend>();
  readonly #mamQueries = new Map<string, ChatMessage[]>();
  /** Live messages whose sender asked for a delivery receipt: where to send it. */
  readonly #receiptRequests = new WeakMap<ChatMessage, { to: string; id: string }>();
  /** Ids of the receipts this session sends: unique per stream is all they need (no random bytes each). */
  readonly #receiptIdPrefix = `r${randomBytes(6).toString('hex')}-`;
  #receiptIdSeq = 0;

  constructor(opts: XmppAccountSessionOptions) {
    this.#settings = opts.settings;
    this.jid = bareJid(opts.settings.jid);
    if (!this.jid?.includes('@')) {
      throw new GatewayError('request.bad_input', 'jid must be a bare JID like user@domain', {
        field: 'jid',
      });
    }
    this.#domain = parseJid(this.jid).domain;
    this.#listener = opts.listener ?? {};
    this.#logger = opts.logger;
    this.#now = opts.now ?? Date.now;
    this.#random = opts.random ?? Math.random;
    this.#backoffInitial = opts.backoff?.initialMs ?? 1000;
    this.#backoffMax = opts.backoff?.maxMs ?? 60_000;
    this.#connectTimeoutMs = opts.connectTimeoutMs ?? 15_000;
    this.#sendTimeoutMs = opts.sendTimeoutMs ?? 60_000;
    this.#maxBodyChars = opts.maxBodyChars ?? 65_536;

    const { host, port } = this.#settings;
    // With an explicit host the service is a URI; with a bare domain @xmpp/resolve does SRV, then A/AAAA.
    const service = host ? `xmpp://${host.includes(':') ? `[${host}]` : host}:${port ?? 5222}` : this.#domain;
    this.#xmpp = client({
      service,
      domain: this.#domain,
      username: parseJid(this.jid).local,
      password: this.#settings.password,
      resource: this.#settings.resource ?? `mmgw-${randomBytes(4).toString('hex')}`,
      timeout: 10_000,
    });
    // Our own loop reconnects (backoff + jitter); the built-in one uses a fixed delay.
    this.#xmpp.reconnect.stop();
    const sm = this.#xmpp.streamManagement;
    sm.requestAckInterval = opts.smRequestAckIntervalMs ?? 30_000;
    sm.requestAckDebounce = opts.smAckDebounceMs ?? 250;
    sm.on('ack', (stanza: XmlElement) => this.#onAck(stanza));
    sm.on('fail', (stanza: XmlElement) => this.#onSmFail(stanza));
    sm.on('resumed', () => this.#smSettled.resolve());

    const x = this.#xmpp;
    // Bytes on the wire to the XMPP server, for the usage counters; the library has no hook.
    const raw = x as unknown as { _onData(data: Buffer): void; write(text: string): Promise<void> };
    const onData = raw._onData;
    raw._onData = (data: Buffer) => {
      this.#bytesIn += data.length;
      onData.call(x, data);
    };
    const write = raw.write;
    raw.write = (text: string) => {
      this.#bytesOut += Buffer.byteLength(text);
      return write.call(x, text);
    };
    x.on('error', (err: unknown) =>
      this.#logger?.debug({ err: String(err), account: this.jid }, 'xmpp error'),
    );
    x.on('disconnect', () => this.#disconnected.resolve());
    x.on('nonza', (el: XmlElement) => this.#onNonza(el));
    x.on('stanza', (el: XmlElement) => {
      try {
        if (el.name === 'message') this.#onMessage(el);
        else if (el.name === 'presence') this.#onPresence(el);
      } catch (err) {
        // A hostile or odd stanza must never take the session down.
        this.#logger?.warn({ err: String(err), account: this.jid }, 'xmpp stanza handling failed');
      }
    });
    x.iqCallee.set(NS.roster, 'query', (ctx) => this.#onRosterPush(ctx.stanza, ctx.element));
  }

  get state(): XmppAccountState {
    return this.#state;
  }

  /** The full JID of the current stream (after resource binding). */
  get boundJid(): string | undefined {
    return this.#xmpp.jid?.toString();
  }

  /** Bytes read from and written to the XMPP server since the last call. */
  takeTraffic(): { bytesIn: number; bytesOut: number } {
    const t = { bytesIn: this.#bytesIn, bytesOut: this.#bytesOut };
    this.#bytesIn = 0;
    this.#bytesOut = 0;
    return t;
  }

  /**
   * Starts the connection loop. Resolves once online; rejects on the first
   * failure unless `persistent` (an account restored after a restart keeps
   * retrying an unreachable server). Authentication failure always stops it.
   */
  start(opts: { persistent?: boolean } = {}): Promise<void> {
    if (!this.#running) {
      this.#setState('connecting');
      this.#running = this.#run(opts.persistent ?? false);
      this.#first.promise.catch(() => {});
    }
    return this.#first.promise;
  }

  /** Roster as last fetched and pushed, with each contact's current presence. */
  roster(): RosterItem[] {
    return [...this.#roster.values()].map((item) => ({ ...item, groups: [...item.groups] }));
  }

  /**
   * Sends a chat message; resolves once the server acknowledged it (XEP-0198).
   * The clientId is both the stanza id and the origin-id (XEP-0359); a second
   * call with a clientId still in flight joins the first.
   */
  send(to: string, body: string, clientId: string): Promise<void> {
    this.#assertUsable();
    const existing = this.#pending.get(clientId);
    if (existing) return existing.promise;
    const d = deferred<void>();
    const entry: PendingSend = {
      clientId,
      bodyBytes: Buffer.byteLength(body),
      inFlight: false,
      stanza: () =>
        xml(
          'message',
          { type: 'chat', to, id: clientId },
          xml('body', {}, body),
          xml('origin-id', { xmlns: NS.sid, id: clientId }),
          xml('request', { xmlns: NS.receipts }),
          xml('active', { xmlns: NS.chatstates }),
        ),
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
    if (this.#state === 'online') this.#transmit(entry);
    return d.promise;
  }

  /**
   * Sends the XEP-0184 receipt for a live message the sender asked one for;
   * called once the message reached the device's session, never for archive
   * or carbon copies.
   */
  async confirmDelivery(message: ChatMessage): Promise<void> {
    const request = this.#receiptRequests.get(message);
    if (!request || this.#state !== 'online') return;
    this.#receiptRequests.delete(message);
    await this.#xmpp
      .send(
        xml(
          'message',
          { to: request.to, id: `${this.#receiptIdPrefix}${(++this.#receiptIdSeq).toString(36)}` },
          xml('received', { xmlns: NS.receipts, id: request.id }),
        ),
      )
      .catch(() => {});
  }

  /** Tells a contact we are typing (XEP-0085); not archived, best effort. */
  async sendChatState(to: string, state: ChatState): Promise<void> {
    this.#assertOnline();
    await this.#xmpp.send(
      xml(
        'message',
        { type: 'chat', to },
        xml(state, { xmlns: NS.chatstates }),
        xml('no-store', { xmlns: NS.hints }),
      ),
    );
  }

  /** Sets this account's presence (kept and re-sent after every fresh session). */
  async setPresence(show: PresenceShow, status?: string): Promise<void> {
    this.#assertUsable();
    this.#ownPresence = status === undefined ? { show } : { show, status };
    if (this.#state === 'online') await this.#xmpp.send(this.#presenceStanza());
  }

  /** Adds or updates a roster item and asks the contact for a presence subscription. */
  async addContact(contact: string, name?: string, groups: string[] = []): Promise<void> {
    this.#assertOnline();
    await this.#iq(
      'set',
      xml(
        'query',
        { xmlns: NS.roster },
        xml(
          'item',
          name === undefined ? { jid: contact } : { jid: contact, name },
          ...groups.map((g) => xml('group', {}, g)),
        ),
      ),
    );
    await this.#xmpp.send(xml('presence', { to: contact, type: 'subscribe' }));
  }

  async removeContact(contact: string): Promise<void> {
    this.#assertOnline();
    await this.#iq(
      'set',
      xml('query', { xmlns: NS.roster }, xml('item', { jid: contact, subscription: 'remove' })),
    );
  }

  /** Answers a contact's subscription request; accepting also asks for theirs (mutual, as clients usually do). */
  async answerSubscription(contact: string, accept: boolean): Promise<void> {
    this.#assertOnline();
    await this.#xmpp.send(xml('presence', { to: contact, type: accept ? 'subscribed' : 'unsubscribed' }));
    if (accept) {
      const item = this.#roster.get(contact);
      if (!item || (item.subscription !== 'to' && item.subscription !== 'both' && item.ask !== 'subscribe')) {
        await this.#xmpp.send(xml('presence', { to: contact, type: 'subscribe' }));
      }
    }
  }

  /**
   * Tells the server whether a user is looking (XEP-0352): inactive while the
   * handset is gone, so the server holds back presence noise.
   */
  async setActive(active: boolean): Promise<void> {
    this.#inactive = !active;
    if (this.#state === 'online' && this.#csiOffered) {
      await this.#xmpp.send(xml(active ? 'active' : 'inactive', { xmlns: NS.csi })).catch(() => {});
    }
  }

  /**
   * Reads the account's archive (XEP-0313): the messages after archive id
   * `after`, oldest first; without `after`, the latest `max`. Duplicates of
   * one origin-id (a resend after a lost ack) are returned once.
   */
  async archive(opts: { after?: string; max?: number; keepDuplicates?: boolean } = {}): Promise<ArchivePage> {
    this.#assertOnline();
    const max = Math.max(1, Math.min(opts.max ?? 100, 500));
    const messages: ChatMessage[] = [];
    const seen = new Set<string>();
    let after = opts.after;
    let last: string | undefined;
    let complete = false;
    while (messages.length < max) {
      const pageMax = Math.min(100, max - messages.length);
      const page = await this.#archivePage(after, pageMax);
      for (const m of page.messages) {
        const key = m.originId === undefined ? undefined : `${m.direction}|${m.from}|${m.originId}`;
        if (key !== undefined && !opts.keepDuplicates) {
          if (seen.has(key)) continue;
          seen.add(key);
        }
        messages.push(m);
      }
      if (page.last !== undefined) last = page.last;
      complete = page.complete;
      // Without a cursor we asked for the newest page only.
      if (complete || page.last === undefined || after === undefined) break;
      after = page.last;
    }
    if (opts.after === undefined) complete = true;
    return last === undefined ? { messages, complete } : { messages, last, complete };
  }

  /** Ends the session for good; pending sends fail with im.unreachable. */
  async stop(): Promise<void> {
    if (this.#stopped && this.#state === 'stopped') return;
    this.#stopped = true;
    if (this.#ackTimer) clearImmediate(this.#ackTimer);
    this.#ackTimer = undefined;
    this.#wake?.();
    this.#first.reject(new GatewayError('im.unreachable', 'the chat session was stopped'));
    for (const entry of this.#pending.values()) {
      clearTimeout(entry.timer);
      entry.reject(new GatewayError('im.unreachable', 'the chat session was stopped', { retryable: true }));
    }
    this.#pending.clear();
    try {
      await withTimeout(this.#xmpp.stop(), 5000, 'closing the XMPP stream');
    } catch {
      // The socket may already be gone; stop() is best effort.
    }
    await this.#running?.catch(() => {});
    if (this.#state !== 'auth_failed') this.#setState('stopped');
  }

  // ---- connection loop ------------------------------------------------------

  async #run(persistent: boolean): Promise<void> {
    while (!this.#stopped) {
      try {
        await this.#connectOnce();
        if (this.#stopped) break;
        this.#attempt = 0;
        this.#everOnline = true;
        this.#setState('online');
        this.#first.resolve();
        await this.#disconnected.promise;
        if (this.#stopped) break;
        this.#setState('retrying');
      } catch (err) {
        const error = mapXmppError(err);
        await this.#drop();
        if (this.#stopped) break;
        if (error.code === 'im.auth_failed') {
          this.#stopped = true;
          this.#setState('auth_failed', error);
          this.#first.reject(error);
          for (const entry of this.#pending.values()) {
            clearTimeout(entry.timer);
            entry.reject(error);
          }
          this.#pending.clear();
          break;
        }
        if (!this.#everOnline && !persistent) {
          this.#stopped = true;
          this.#first.reject(error);
          this.#setState('stopped', error);
          break;
        }
        this.#setState('retrying', error);
      }
      await this.#sleep(this.#backoffDelay(this.#attempt++));
    }
  }

  async #connectOnce(): Promise<void> {
    const x = this.#xmpp;
    this.#disconnected = deferred<void>();
    this.#smSettled = deferred<void>();
    this.#smOffered = false;
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
      if (!resumed) await this.#afterBind();
    })();
    await withTimeout(attempt, this.#connectTimeoutMs, 'connecting to the XMPP server');
    if (resumed) this.#logger?.debug({ account: this.jid }, 'xmpp stream resumed');
  }

  /** Everything a fresh (not resumed) session needs before it counts as online. */
  async #afterBind(): Promise<void> {
    // Stanzas sent between resource binding and <enabled/> would be counted by
    // our side but not by the server's, shifting every later ack; wait for it.
    if (this.#smOffered) {
      await this.#unlessDisconnected(
        withTimeout(this.#smSettled.promise, 10_000, 'enabling stream management'),
      );
      // The library resets its counters in a promise continuation after <enabled/>;
      // setImmediate runs once those microtasks are done.
      await new Promise((resolve) => setImmediate(resolve));
    }
    try {
      await this.#iq('set', xml('enable', { xmlns: NS.carbons }));
    } catch (err) {
      this.#logger?.info({ account: this.jid, err: String(err) }, 'carbons not available');
    }
    const result = await this.#iq('get', xml('query', { xmlns: NS.roster }));
    this.#resources.clear();
    this.#roster.clear();
    for (const item of result?.getChildren('item') ?? []) {
      const parsed = this.#parseRosterItem(item);
      if (parsed && parsed.subscription !== 'remove') this.#roster.set(parsed.jid, parsed);
    }
    await this.#xmpp.send(this.#presenceStanza());
    // A server handles one stream's stanzas in order: once this ping is answered our
    // presence is in effect and messages to the bare JID are routed to us.
    await this.#iq('get', xml('ping', { xmlns: 'urn:xmpp:ping' }));
    if (this.#inactive && this.#csiOffered) await this.#xmpp.send(xml('inactive', { xmlns: NS.csi }));
    // Messages whose stream died unacknowledged go out again, same id and origin-id.
    for (const entry of this.#pending.values()) if (!entry.inFlight) this.#transmit(entry);
  }

  async #drop(): Promise<void> {
    const x = this.#xmpp;
    if (x.status === 'disconnect' || x.status === 'offline') return;
    try {
      await withTimeout(x.disconnect(), 5000, 'closing the XMPP connection');
    } catch {
      // already broken
    }
  }

  #backoffDelay(attempt: number): number {
    const base = Math.min(this.#backoffMax, this.#backoffInitial * 2 ** Math.min(attempt, 20));
    return Math.round(base * (0.5 + this.#random() * 0.5));
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#wake = undefined;
        resolve();
      }, ms);
      this.#wake = () => {
        clearTimeout(timer);
        this.#wake = undefined;
        resolve();
      };
    });
  }

  #setState(state: XmppAccountState, error?: GatewayError): void {
    if (this.#state === state && this.#lastErrorCode === error?.code) return;
    this.#state = state;
    this.#lastErrorCode = error?.code;
    this.#logger?.info({ account: this.jid, state, code: error?.code }, 'xmpp account state');
    try {
      this.#listener.state?.(state, error);
    } catch {
      // a listener must not break the loop
    }
  }

  #assertUsable(): void {
    if (this.#state === 'auth_failed')
      throw new GatewayError('im.auth_failed', 'the account needs a new password');
    if (this.#stopped) throw new GatewayError('im.unreachable', 'the chat session is stopped');
  }

  #assertOnline(): void {
    this.#assertUsable();
    if (this.#state !== 'online') {
      throw new GatewayError('im.unreachable', 'the chat account is reconnecting; retry shortly', {
        retryable: true,
        retryAfterMs: 2000,
      });
    }
  }

  async #iq(type: 'get' | 'set', child: XmlElement, timeoutMs = 30_000): Promise<XmlElement | undefined> {
    try {
      const method = type === 'get' ? this.#xmpp.iqCaller.get : this.#xmpp.iqCaller.set;
      return await this.#unlessDisconnected(method.call(this.#xmpp.iqCaller, child, undefined, timeoutMs));
    } catch (err) {
      throw mapXmppError(err);
    }
  }

  /** An answer that can no longer come (the stream is gone) fails at once instead of at its timeout. */
  #unlessDisconnected<T>(promise: Promise<T>): Promise<T> {
    const gone = this.#disconnected.promise.then(() => {
      throw new GatewayError('im.unreachable', 'the XMPP connection was lost', { retryable: true });
    });
    gone.catch(() => {});
    return Promise.race([promise, gone]);
  }

  #presenceStanza(): XmlElement {
    const { show, status } = this.#ownPresence;
    if (show === 'unavailable')
      return xml('presence', { type: 'unavailable' }, status && xml('status', {}, status));
    return xml(
      'presence',
      {},
      show !== 'available' && xml('show', {}, show),
      status !== undefined && xml('status', {}, status),
    );
  }

  // ---- sending --------------------------------------------------------------

  #transmit(entry: PendingSend): void {
    entry.inFlight = true;
    const smOn = this.#xmpp.streamManagement.enabled;
    // The library's ack request is debounced: under a steady stream of sends it would never
    // go out, and every im.send would wait for a pause. One <r/> follows each burst instead
    // (every send of this event-loop turn): im.sent waits one server round trip, no timer, and
    // the extra bytes are on the server link, not the handset's.
    if (smOn && this.#ackTimer === undefined) {
      this.#ackTimer = setImmediate(() => {
        this.#ackTimer = undefined;
        if (this.#state === 'online' && this.#xmpp.streamManagement.enabled) {
          this.#xmpp.send(xml('r', { xmlns: NS.sm })).catch(() => {});
        }
      });
    }
    this.#xmpp.send(entry.stanza()).then(
      () => {
        // Without stream management the best we can know is that the bytes left.
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
      this.#listener.sent?.(clientId, entry.bodyBytes);
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
    const sm = this.#xmpp.streamManagement;
    if (!Number.isInteger(h) || h < sm.outbound) return;
    for (const item of sm.outbound_q.slice(0, h - sm.outbound)) this.#onAck(item.stanza);
  }

  #onSmFail(stanza: XmlElement): void {
    const id = stanza.name === 'message' ? stanza.attrs.id : undefined;
    const entry = id === undefined ? undefined : this.#pending.get(id);
    if (entry) entry.inFlight = false;
  }

  // ---- receiving ------------------------------------------------------------

  #onNonza(el: XmlElement): void {
    if (el.is('features', NS.stream)) {
      this.#smOffered = el.getChild('sm', NS.sm) !== undefined;
      this.#csiOffered = el.getChild('csi', NS.csi) !== undefined;
      // The library decides synchronously, before this event, whether it will try
      // to resume (it has a previous stream id); a <failed/> then answers <resume/>.
      this.#awaitingResume = this.#smOffered && this.#xmpp.streamManagement.id !== '';
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

  #onMessage(el: XmlElement): void {
    const type = el.attrs.type ?? 'normal';
    if (type === 'error') {
      this.#logger?.debug({ account: this.jid, id: el.attrs.id }, 'xmpp message bounced');
      return;
    }
    const fromOwnServer = el.attrs.from === undefined || bareJid(el.attrs.from) === this.jid;
    const mamResult = el.getChild('result', NS.mam);
    if (mamResult) {
      // Archive results only count from our own account (anyone can send us a <result/>).
      if (fromOwnServer) this.#onArchiveResult(mamResult);
      return;
    }
    const carbon = el.getChild('received', NS.carbons) ?? el.getChild('sent', NS.carbons);
    if (carbon) {
      // XEP-0280 §11: a carbon not from our own bare JID is a forgery.
      if (!fromOwnServer) return;
      const forwarded = carbon.getChild('forwarded', NS.forward);
      const inner = forwarded?.getChild('message');
      if (!inner) return;
      const direction = carbon.name === 'sent' ? 'out' : 'in';
      const chat = this.#toChatMessage(inner, direction, forwarded?.getChild('delay', NS.delay)?.attrs.stamp);
      if (chat) this.#emitMessage({ ...chat, carbon: true });
      return;
    }
    if (type !== 'chat' && type !== 'normal') return;
    const from = bareJid(el.attrs.from);
    const receipt = el.getChild('received', NS.receipts);
    if (receipt?.attrs.id && from) this.#listener.receipt?.(from, receipt.attrs.id.slice(0, 256));
    const chat = this.#toChatMessage(el, 'in');
    if (chat) {
      const id = el.attrs.id;
      if (id && el.attrs.from && el.getChild('request', NS.receipts)) {
        this.#receiptRequests.set(chat, { to: el.attrs.from, id: id.slice(0, 256) });
      }
      this.#emitMessage(chat);
      return;
    }
    // Chat states travel alone (a message with a body implies 'active').
    const state = el.getChildElements().find((c) => c.attrs.xmlns === NS.chatstates)?.name as
      | ChatState
      | undefined;
    if (state && from && CHAT_STATES.includes(state)) this.#listener.typing?.(from, state);
  }

  #emitMessage(message: ChatMessage): void {
    try {
      this.#listener.message?.(message);
    } catch (err) {
      this.#logger?.warn({ err: String(err), account: this.jid }, 'im message listener failed');
    }
  }

  #toChatMessage(el: XmlElement, direction: 'in' | 'out', outerStamp?: string): ChatMessage | undefined {
    const rawBody = el.getChildText('body');
    if (rawBody === null || rawBody === undefined) return undefined;
    const { text, truncated } = sanitizeText(rawBody, this.#maxBodyChars);
    const from = direction === 'in' ? bareJid(el.attrs.from) : this.jid;
    const to = direction === 'in' ? this.jid : bareJid(el.attrs.to);
    if (!from || !to) return undefined;
    const stamp = el.getChild('delay', NS.delay)?.attrs.stamp ?? outerStamp;
    const at =
      stamp && !Number.isNaN(Date.parse(stamp))
        ? new Date(stamp).toISOString()
        : new Date(this.#now()).toISOString();
    const message: ChatMessage = { from, to, body: text, at, direction };
    // Only the id our own server stamped is an archive id we can page from. A sender can put
    // a forged <stanza-id by="us"/> in; a server that does not strip it (Prosody 0.12 does not)
    // appends its own after it, so the last one is the server's.
    const stanzaId = el
      .getChildren('stanza-id', NS.sid)
      .filter((s) => s.attrs.by === this.jid)
      .at(-1)?.attrs.id;
    if (stanzaId) message.stanzaId = stanzaId.slice(0, 256);
    const originId = el.getChild('origin-id', NS.sid)?.attrs.id;
    if (originId) message.originId = originId.slice(0, 256);
    if (truncated) message.truncated = true;
    return message;
  }

  #onArchiveResult(result: XmlElement): void {
    const collected = this.#mamQueries.get(result.attrs.queryid ?? '');
    if (!collected) return;
    const forwarded = result.getChild('forwarded', NS.forward);
    const inner = forwarded?.getChild('message');
    if (!inner || !result.attrs.id) return;
    const direction = bareJid(inner.attrs.from) === this.jid ? 'out' : 'in';
    const chat = this.#toChatMessage(inner, direction, forwarded?.getChild('delay', NS.delay)?.attrs.stamp);
    if (!chat) return;
    chat.stanzaId = result.attrs.id;
    collected.push(chat);
  }

  async #archivePage(after: string | undefined, max: number): Promise<ArchivePage> {
    const queryid = randomBytes(6).toString('hex');
    const collected: ChatMessage[] = [];
    this.#mamQueries.set(queryid, collected);
    try {
      const set = xml(
        'set',
        { xmlns: NS.rsm },
        xml('max', {}, String(max)),
        after === undefined ? xml('before', {}) : xml('after', {}, after),
      );
      const form = xml(
        'x',
        { xmlns: NS.dataForm, type: 'submit' },
        xml('field', { var: 'FORM_TYPE', type: 'hidden' }, xml('value', {}, NS.mam)),
      );
      let fin: XmlElement | undefined;
      try {
        const reply = await this.#unlessDisconnected(
          this.#xmpp.iqCaller.request(
            xml('iq', { type: 'set' }, xml('query', { xmlns: NS.mam, queryid }, form, set)),
            30_000,
          ),
        );
        fin = reply.getChild('fin', NS.mam);
      } catch (err) {
        const e = err as { name?: string; condition?: string };
        if (e.name === 'StanzaError' && e.condition === 'item-not-found') {
          throw new GatewayError('im.bad_cursor', 'the archive does not know this id', { field: 'after' });
        }
        throw mapXmppError(err);
      }
      const last = fin?.getChild('set', NS.rsm)?.getChildText('last') ?? undefined;
      const complete = fin?.attrs.complete === 'true';
      return last ? { messages: collected, last, complete } : { messages: collected, complete };
    } finally {
      this.#mamQueries.delete(queryid);
    }
  }

  #onPresence(el: XmlElement): void {
    const from = el.attrs.from;
    if (!from) return;
    const contact = bareJid(from);
    if (!contact) return;
    const type = el.attrs.type;
    if (type === 'subscribe' || type === 'subscribed' || type === 'unsubscribe' || type === 'unsubscribed') {
      this.#listener.subscription?.(contact, type);
      return;
    }
    if (type !== undefined && type !== 'unavailable') return; // error, probe
    if (contact === this.jid) return; // our own other clients
    const resource = parseJid(from).resource ?? '';
    let resources = this.#resources.get(contact);
    const before = this.#aggregate(contact);
    if (type === 'unavailable') {
      resources?.delete(resource);
    } else {
      if (!resources) this.#resources.set(contact, (resources = new Map()));
      const show = el.getChildText('show');
      const status = el.getChildText('status');
      const priority = Number.parseInt(el.getChildText('priority') ?? '0', 10);
      const entry: ResourcePresence = {
        show: show && SHOWS.has(show) ? (show as PresenceShow) : 'available',
        priority: Number.isFinite(priority) ? priority : 0,
      };
      if (status !== null && status !== undefined) entry.status = sanitizeText(status, 1024).text;
      // A flood of resources from one contact is bounded: keep at most 32.
      if (resources.size >= 32 && !resources.has(resource)) return;
      resources.set(resource, entry);
    }
    const after = this.#aggregate(contact);
    if (before.show === after.show && before.status === after.status) return;
    const item = this.#roster.get(contact);
    if (item) {
      item.presence = after.show;
      if (after.status === undefined) delete item.status;
      else item.status = after.status;
    }
    this.#listener.presence?.(after);
  }

  #aggregate(contact: string): ContactPresence {
    const resources = this.#resources.get(contact);
    let best: ResourcePresence | undefined;
    for (const r of resources?.values() ?? []) {
      if (
        !best ||
        r.priority > best.priority ||
        (r.priority === best.priority && SHOW_RANK[r.show] > SHOW_RANK[best.show])
      ) {
        best = r;
      }
    }
    if (!best) return { jid: contact, show: 'unavailable' };
    return best.status === undefined
      ? { jid: contact, show: best.show }
      : { jid: contact, show: best.show, status: best.status };
  }

  #parseRosterItem(item: XmlElement): RosterItem | undefined {
    const contact = bareJid(item.attrs.jid);
    if (!contact) return undefined;
    const presence = this.#aggregate(contact);
    const parsed: RosterItem = {
      jid: contact,
      groups: item
        .getChildren('group')
        .map((g) => sanitizeText(g.text(), 256).text)
        .slice(0, 32),
      subscription: item.attrs.subscription ?? 'none',
      presence: presence.show,
    };
    if (item.attrs.name) parsed.name = sanitizeText(item.attrs.name, 256).text;
    if (item.attrs.ask) parsed.ask = item.attrs.ask;
    if (presence.status !== undefined) parsed.status = presence.status;
    return parsed;
  }

  #onRosterPush(stanza: XmlElement, query: XmlElement): unknown {
    // RFC 6121 §2.1.6: a roster push from anyone but our own account is ignored.
    if (stanza.attrs.from !== undefined && bareJid(stanza.attrs.from) !== this.jid) {
      return xml(
        'error',
        { type: 'cancel' },
        xml('service-unavailable', { xmlns: 'urn:ietf:params:xml:ns:xmpp-stanzas' }),
      );
    }
    const changed: RosterItem[] = [];
    for (const item of query.getChildren('item')) {
      const parsed = this.#parseRosterItem(item);
      if (!parsed) continue;
      if (parsed.subscription === 'remove') this.#roster.delete(parsed.jid);
      else this.#roster.set(parsed.jid, parsed);
      changed.push(parsed);
    }
    if (changed.length > 0) this.#listener.roster?.(changed);
    return true;
  }
}

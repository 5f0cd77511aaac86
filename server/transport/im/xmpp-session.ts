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
 *
 * Like xmpp.js's own client factory, the session is a composition of plugins,
 * one per concern, each in xmpp/ with its own tests: the connection loop
 * (reconnect.ts) over one attempt at a time (connection.ts), the outbox
 * (outbox.ts), presence, roster, archive, receipts, chat states, carbons,
 * client state, received-message routing (inbound.ts), byte metering
 * (traffic.ts) and JID handling (jid.ts). This file wires them to one
 * @xmpp/client and keeps the account's public face.
 *
 * What a server sends cannot take the process down (issue #11): the stream
 * guard (stream-guard.ts) parses only live streams, caps a stanza's size,
 * turns parser failures into an error of this session, and tears a
 * connection down in bounded time, every socket layer destroyed. Errors a
 * device sees have fixed messages (errors.ts); the server's words go to the
 * log only. With an outbound policy the session connects only to checked,
 * pinned addresses (destination.ts).
 */
import { randomBytes } from 'node:crypto';
import { client, type XmlElement, type XmppClient, xml } from '@xmpp/client';
import { GatewayError } from '../../../device-protocol/errors.ts';
import type { DestinationPolicy } from '../../net/destination-policy.ts';
import { Archive } from './xmpp/archive.ts';
import { enableCarbons } from './xmpp/carbons.ts';
import { chatStateStanza } from './xmpp/chat-state.ts';
import { Connection } from './xmpp/connection.ts';
import { ClientState } from './xmpp/csi.ts';
import {
  checkedDestinations,
  refuseRedirects,
  type SrvResolver,
  useDomainForTls,
} from './xmpp/destination.ts';
import { xmppErrorDetail } from './xmpp/errors.ts';
import { InboundMessages } from './xmpp/inbound.ts';
import { accountAddress, serviceFor } from './xmpp/jid.ts';
import { chatMessageStanza, type MessageReader, readChatMessage } from './xmpp/message.ts';
import { Outbox } from './xmpp/outbox.ts';
import { ContactPresences, type OwnPresence, ownPresenceStanza } from './xmpp/presence.ts';
import { Reconnect } from './xmpp/reconnect.ts';
import { Roster } from './xmpp/roster.ts';
import { Receipts } from './xmpp/receipts.ts';
import { applyScramSpeedup } from './xmpp/scram-speedup.ts';
import { StreamGuard } from './xmpp/stream-guard.ts';
import { TrafficMeter } from './xmpp/traffic.ts';
import {
  type ArchivePage,
  type ChatMessage,
  type ChatState,
  NS,
  type PresenceShow,
  type RosterItem,
  type XmppAccountSettings,
  type XmppAccountState,
  type XmppLogger,
  type XmppSessionListener,
} from './xmpp/types.ts';

export { bareJid } from './xmpp/jid.ts';
export { hasControlChars, sanitizeText } from './xmpp/text.ts';
export * from './xmpp/types.ts';

applyScramSpeedup();

export interface XmppAccountSessionOptions {
  settings: XmppAccountSettings;
  listener?: Partial<XmppSessionListener>;
  logger?: XmppLogger;
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
  /**
   * How long closing a stream may take (our </stream:stream>, the server's,
   * FIN) before the socket is destroyed; stop() and a failed attempt's
   * cleanup never take longer. Default 5 s.
   */
  closeTimeoutMs?: number;
  /**
   * Bytes one top-level element from the server (a stanza, or the stream
   * header) may take; a bigger one ends the connection (im.server_error).
   * Default 1 MiB: four times Prosody's own c2s stanza limit, room for a
   * roster of several thousand contacts.
   */
  maxStanzaBytes?: number;
  /**
   * The outbound policy (server/net/destination-policy.ts). When set, every
   * attempt resolves the server first (the explicit host, or the domain's SRV
   * records, or the domain on 5222), checks each address and connects only to
   * a checked one; a refused server fails with policy.destination_not_allowed
   * and is not retried. Without it the library resolves and connects as it
   * always did.
   */
  policy?: DestinationPolicy;
  /** SRV lookups under the policy; node:dns by default, injected for tests. */
  resolveSrv?: SrvResolver;
}

export class XmppAccountSession {
  readonly jid: string;
  readonly #logger?: XmppLogger;
  readonly #xmpp: XmppClient;
  readonly #loop: Reconnect;
  readonly #connection: Connection;
  readonly #traffic: TrafficMeter;
  readonly #outbox: Outbox;
  readonly #presence: ContactPresences;
  #ownPresence: OwnPresence = { show: 'available' };
  readonly #roster: Roster;
  readonly #archive: Archive;
  readonly #receipts: Receipts;
  readonly #csi: ClientState;

  constructor(opts: XmppAccountSessionOptions) {
    const { settings } = opts;
    const account = accountAddress(settings.jid);
    this.jid = account.jid;
    const listener = opts.listener ?? {};
    const logger = (this.#logger = opts.logger);
    const x = (this.#xmpp = client({
      service: serviceFor(account.domain, settings.host, settings.port),
      domain: account.domain,
      username: account.local,
      password: settings.password,
      resource: settings.resource ?? `mmgw-${randomBytes(4).toString('hex')}`,
      timeout: 10_000,
    }));
    // Our own loop reconnects (backoff + jitter); the built-in one uses a fixed delay.
    x.reconnect.stop();
    const sm = x.streamManagement;
    // Before anything connects: the guard takes over the library's data path and teardown.
    new StreamGuard({
      entity: x,
      maxStanzaBytes: opts.maxStanzaBytes ?? 1024 * 1024,
      closeTimeoutMs: opts.closeTimeoutMs ?? 5000,
      // What the library's own close does first (XEP-0198: tell the server what we handled).
      beforeClose: () => (sm.enabled ? x.send(xml('a', { xmlns: NS.sm, h: String(sm.inbound) })) : undefined),
    });
    useDomainForTls(x, account.domain);
    const policy = opts.policy;
    if (policy) refuseRedirects(x);
    sm.requestAckInterval = opts.smRequestAckIntervalMs ?? 30_000;
    sm.requestAckDebounce = opts.smAckDebounceMs ?? 250;
    const isOnline = () => this.#loop.state === 'online';
    const send = (el: XmlElement) => x.send(el);
    const reader: MessageReader = {
      account: this.jid,
      maxBodyChars: opts.maxBodyChars ?? 65_536,
      now: opts.now ?? Date.now,
    };
    const read = (el: XmlElement, direction: 'in' | 'out', stamp?: string) =>
      readChatMessage(reader, el, direction, stamp);

    this.#outbox = new Outbox({
      entity: x,
      sm,
      isOnline,
      sendTimeoutMs: opts.sendTimeoutMs ?? 60_000,
      onSent: (clientId, bytes) => listener.sent?.(clientId, bytes),
    });
    this.#traffic = new TrafficMeter({ entity: x });
    x.on('error', (err: unknown) =>
      logger?.debug({ err: xmppErrorDetail(err), account: this.jid }, 'xmpp error'),
    );
    const connection = (this.#connection = new Connection({
      entity: x,
      domain: account.domain,
      connectTimeoutMs: opts.connectTimeoutMs ?? 15_000,
      ...(policy && {
        destinations: () =>
          checkedDestinations({
            policy,
            domain: account.domain,
            host: settings.host,
            port: settings.port,
            resolveSrv: opts.resolveSrv,
            onChecked: ({ pinned: { address, port, allowedBy } }) =>
              logger?.debug({ account: this.jid, address, port, allowedBy }, 'xmpp destination'),
          }),
      }),
    }));
    this.#csi = new ClientState({ entity: x, isOnline });
    this.#presence = new ContactPresences({
      account: this.jid,
      onChange: (presence) => {
        this.#roster.applyPresence(presence);
        listener.presence?.(presence);
      },
      onSubscription: (from, kind) => listener.subscription?.(from, kind),
    });
    this.#receipts = new Receipts({
      send,
      isOnline,
      onReceipt: (from, id) => listener.receipt?.(from, id),
    });
    this.#archive = new Archive({
      account: this.jid,
      request: (iq, timeoutMs) => connection.unlessDisconnected(x.iqCaller.request(iq, timeoutMs)),
      read,
    });
    const inbound = new InboundMessages({
      account: this.jid,
      read,
      archive: this.#archive,
      receipts: this.#receipts,
      onMessage: (message) => listener.message?.(message),
      onTyping: (from, state) => listener.typing?.(from, state),
      logger,
    });
    x.on('stanza', (el: XmlElement) => {
      try {
        if (el.name === 'message') inbound.handle(el);
        else if (el.name === 'presence') this.#presence.handle(el);
      } catch (err) {
        // A hostile or odd stanza must never take the session down.
        logger?.warn({ err: String(err), account: this.jid }, 'xmpp stanza handling failed');
      }
    });
    this.#roster = new Roster({
      account: this.jid,
      iqCallee: x.iqCallee,
      iq: (type, child) => connection.iq(type, child),
      send,
      presence: this.#presence,
      onPush: (items) => listener.roster?.(items),
    });
    this.#loop = new Reconnect({
      connect: async () => {
        this.#outbox.beginStream();
        const resumed = await connection.open(() => this.#afterBind());
        if (resumed) logger?.debug({ account: this.jid }, 'xmpp stream resumed');
      },
      disconnected: () => connection.disconnected(),
      drop: () => connection.drop(),
      onState: (state, error) => {
        // The server's words (a stream error's text, a banner) only here, sanitised and cut.
        const detail = error ? { code: error.code, detail: xmppErrorDetail(error) } : {};
        logger?.info({ account: this.jid, state, ...detail }, 'xmpp account state');
        listener.state?.(state, error);
      },
      onTerminal: (error) => this.#outbox.failAll(error),
      random: opts.random ?? Math.random,
      backoff: opts.backoff,
    });
  }

  get state(): XmppAccountState {
    return this.#loop.state;
  }

  /** The full JID of the current stream (after resource binding). */
  get boundJid(): string | undefined {
    return this.#xmpp.jid?.toString();
  }

  /** Bytes read from and written to the XMPP server since the last call. */
  takeTraffic(): { bytesIn: number; bytesOut: number } {
    return this.#traffic.take();
  }

  /**
   * Starts the connection loop. Resolves once online; rejects on the first
   * failure unless `persistent` (an account restored after a restart keeps
   * retrying an unreachable server). Authentication failure always stops it.
   */
  start(opts: { persistent?: boolean } = {}): Promise<void> {
    return this.#loop.start(opts.persistent ?? false);
  }

  /** Roster as last fetched and pushed, with each contact's current presence. */
  roster(): RosterItem[] {
    return this.#roster.list();
  }

  /**
   * Sends a chat message; resolves once the server acknowledged it (XEP-0198).
   * The clientId is both the stanza id and the origin-id (XEP-0359); a second
   * call with a clientId still in flight joins the first.
   */
  send(to: string, body: string, clientId: string): Promise<void> {
    this.#assertUsable();
    return this.#outbox.submit(clientId, Buffer.byteLength(body), () =>
      chatMessageStanza(to, body, clientId),
    );
  }

  /**
   * Sends the XEP-0184 receipt for a live message the sender asked one for;
   * called once the message reached the device's session, never for archive
   * or carbon copies.
   */
  confirmDelivery(message: ChatMessage): Promise<void> {
    return this.#receipts.confirm(message);
  }

  /** Tells a contact we are typing (XEP-0085); not archived, best effort. */
  async sendChatState(to: string, state: ChatState): Promise<void> {
    this.#assertOnline();
    await this.#xmpp.send(chatStateStanza(to, state));
  }

  /** Sets this account's presence (kept and re-sent after every fresh session). */
  async setPresence(show: PresenceShow, status?: string): Promise<void> {
    this.#assertUsable();
    this.#ownPresence = status === undefined ? { show } : { show, status };
    if (this.state === 'online') await this.#xmpp.send(ownPresenceStanza(this.#ownPresence));
  }

  /** Adds or updates a roster item and asks the contact for a presence subscription. */
  async addContact(contact: string, name?: string, groups: string[] = []): Promise<void> {
    this.#assertOnline();
    await this.#roster.add(contact, name, groups);
  }

  async removeContact(contact: string): Promise<void> {
    this.#assertOnline();
    await this.#roster.remove(contact);
  }

  /** Answers a contact's subscription request; accepting also asks for theirs (mutual, as clients usually do). */
  async answerSubscription(contact: string, accept: boolean): Promise<void> {
    this.#assertOnline();
    await this.#roster.answerSubscription(contact, accept);
  }

  /**
   * Tells the server whether a user is looking (XEP-0352): inactive while the
   * handset is gone, so the server holds back presence noise.
   */
  setActive(active: boolean): Promise<void> {
    return this.#csi.setActive(active);
  }

  /**
   * Reads the account's archive (XEP-0313): the messages after archive id
   * `after`, oldest first; without `after`, the latest `max`. Duplicates of
   * one origin-id (a resend after a lost ack) are returned once.
   */
  async archive(opts: { after?: string; max?: number; keepDuplicates?: boolean } = {}): Promise<ArchivePage> {
    this.#assertOnline();
    return this.#archive.query(opts);
  }

  /** Ends the session for good; pending sends fail with im.unreachable. */
  async stop(): Promise<void> {
    if (this.#loop.stopped && this.state === 'stopped') return;
    this.#outbox.stop();
    this.#loop.stop(new GatewayError('im.unreachable', 'the chat session was stopped'));
    this.#outbox.failAll(
      new GatewayError('im.unreachable', 'the chat session was stopped', { retryable: true }),
    );
    try {
      // Bounded by closeTimeoutMs: the stream guard destroys the socket when the close takes longer.
      await this.#xmpp.stop();
    } catch {
      // The socket may already be gone; stop() is best effort.
    }
    await this.#loop.finished();
    if (this.state !== 'auth_failed') this.#loop.setState('stopped');
  }

  /** Everything a fresh (not resumed) session needs before it counts as online. */
  async #afterBind(): Promise<void> {
    const connection = this.#connection;
    await this.#outbox.whenEnabled((p) => connection.unlessDisconnected(p));
    await enableCarbons((type, child) => connection.iq(type, child), {
      account: this.jid,
      logger: this.#logger,
    });
    await this.#roster.refresh();
    await this.#xmpp.send(ownPresenceStanza(this.#ownPresence));
    // A server handles one stream's stanzas in order: once this ping is answered our
    // presence is in effect and messages to the bare JID are routed to us.
    await connection.iq('get', xml('ping', { xmlns: 'urn:xmpp:ping' }));
    await this.#csi.restore();
    this.#outbox.resendUnacked();
  }

  #assertUsable(): void {
    if (this.state === 'auth_failed')
      throw new GatewayError('im.auth_failed', 'the account needs a new password');
    if (this.#loop.stopped) throw new GatewayError('im.unreachable', 'the chat session is stopped');
  }

  #assertOnline(): void {
    this.#assertUsable();
    if (this.state !== 'online') {
      throw new GatewayError('im.unreachable', 'the chat account is reconnecting; retry shortly', {
        retryable: true,
        retryAfterMs: 2000,
      });
    }
  }
}

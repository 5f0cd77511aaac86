/**
 * What the XMPP account session shows the rest of the IM transport: the
 * namespaces it speaks, its states, and the shapes of messages, presence,
 * roster items and archive pages it hands on. The plugins under this folder
 * share them; `xmpp-session.ts` re-exports them.
 */
import type { Logger } from 'pino';
import type { GatewayError } from '../../../../device-protocol/errors.ts';

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

export type XmppLogger = Pick<Logger, 'debug' | 'info' | 'warn'>;

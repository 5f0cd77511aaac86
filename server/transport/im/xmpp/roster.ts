/**
 * The account's roster (RFC 6121 §2): fetched on every fresh session, kept
 * up to date by the server's pushes, each item carrying its contact's
 * current presence. Adding a contact also asks for its presence subscription.
 */
import { type XmlElement, xml } from '@xmpp/client';
import { bareJid } from './jid.ts';
import { sanitizeText } from './text.ts';
import { type ContactPresence, NS, type RosterItem } from './types.ts';

export interface RosterIqCallee {
  set(ns: string, name: string, handler: (ctx: { stanza: XmlElement; element: XmlElement }) => unknown): void;
}

export interface RosterOptions {
  /** The account's bare JID: the only sender a roster push is taken from. */
  account: string;
  iqCallee: RosterIqCallee;
  iq(type: 'get' | 'set', child: XmlElement): Promise<XmlElement | undefined>;
  send(element: XmlElement): Promise<void>;
  /** Contacts' presence, as kept by ContactPresences. */
  presence: { of(contact: string): ContactPresence; clear(): void };
  /** Items changed by a server push; removed items have subscription 'remove'. */
  onPush?(items: RosterItem[]): void;
}

export class Roster {
  readonly #account: string;
  readonly #iq: RosterOptions['iq'];
  readonly #send: RosterOptions['send'];
  readonly #presence: RosterOptions['presence'];
  readonly #onPush?: (items: RosterItem[]) => void;
  readonly #items = new Map<string, RosterItem>();

  constructor(opts: RosterOptions) {
    this.#account = opts.account;
    this.#iq = opts.iq;
    this.#send = opts.send;
    this.#presence = opts.presence;
    this.#onPush = opts.onPush;
    opts.iqCallee.set(NS.roster, 'query', (ctx) => this.#onRosterPush(ctx.stanza, ctx.element));
  }

  /** Fetches the roster afresh; contacts' presence starts over with it. */
  async refresh(): Promise<void> {
    const result = await this.#iq('get', xml('query', { xmlns: NS.roster }));
    this.#presence.clear();
    this.#items.clear();
    for (const item of result?.getChildren('item') ?? []) {
      const parsed = this.#parseItem(item);
      if (parsed && parsed.subscription !== 'remove') this.#items.set(parsed.jid, parsed);
    }
  }

  /** Copies of the items, with each contact's current presence. */
  list(): RosterItem[] {
    return [...this.#items.values()].map((item) => ({ ...item, groups: [...item.groups] }));
  }

  /** A contact's combined presence changed. */
  applyPresence(presence: ContactPresence): void {
    const item = this.#items.get(presence.jid);
    if (!item) return;
    item.presence = presence.show;
    if (presence.status === undefined) delete item.status;
    else item.status = presence.status;
  }

  /** Adds or updates an item and asks the contact for a presence subscription. */
  async add(contact: string, name?: string, groups: string[] = []): Promise<void> {
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
    await this.#send(xml('presence', { to: contact, type: 'subscribe' }));
  }

  async remove(contact: string): Promise<void> {
    await this.#iq(
      'set',
      xml('query', { xmlns: NS.roster }, xml('item', { jid: contact, subscription: 'remove' })),
    );
  }

  /** Answers a subscription request; accepting also asks for theirs (mutual, as clients usually do). */
  async answerSubscription(contact: string, accept: boolean): Promise<void> {
    await this.#send(xml('presence', { to: contact, type: accept ? 'subscribed' : 'unsubscribed' }));
    if (accept) {
      const item = this.#items.get(contact);
      if (!item || (item.subscription !== 'to' && item.subscription !== 'both' && item.ask !== 'subscribe')) {
        await this.#send(xml('presence', { to: contact, type: 'subscribe' }));
      }
    }
  }

  #parseItem(item: XmlElement): RosterItem | undefined {
    const contact = bareJid(item.attrs.jid);
    if (!contact) return undefined;
    const presence = this.#presence.of(contact);
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
    if (stanza.attrs.from !== undefined && bareJid(stanza.attrs.from) !== this.#account) {
      return xml(
        'error',
        { type: 'cancel' },
        xml('service-unavailable', { xmlns: 'urn:ietf:params:xml:ns:xmpp-stanzas' }),
      );
    }
    const changed: RosterItem[] = [];
    for (const item of query.getChildren('item')) {
      const parsed = this.#parseItem(item);
      if (!parsed) continue;
      if (parsed.subscription === 'remove') this.#items.delete(parsed.jid);
      else this.#items.set(parsed.jid, parsed);
      changed.push(parsed);
    }
    if (changed.length > 0) this.#onPush?.(changed);
    return true;
  }
}

/**
 * Presence (RFC 6121 §4): the account's own, and its contacts'. A contact
 * online from several clients is one presence, the best of its resources
 * (highest priority, then the most available show); a change is reported
 * only when that combined presence changes, so a contact's clients coming
 * and going do not each become a push. Subscription requests and answers
 * travel as presence too and are reported as such.
 */
import { type XmlElement, xml } from '@xmpp/client';
import { bareJid, resourceOf } from './jid.ts';
import { sanitizeText } from './text.ts';
import type { ContactPresence, PresenceShow, SubscriptionKind } from './types.ts';

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
/** A flood of resources from one contact is bounded. */
const MAX_RESOURCES = 32;

export interface OwnPresence {
  show: PresenceShow;
  status?: string;
}

/** The stanza announcing the account's own presence. */
export function ownPresenceStanza({ show, status }: OwnPresence): XmlElement {
  if (show === 'unavailable')
    return xml('presence', { type: 'unavailable' }, status && xml('status', {}, status));
  return xml(
    'presence',
    {},
    show !== 'available' && xml('show', {}, show),
    status !== undefined && xml('status', {}, status),
  );
}

export interface ContactPresencesOptions {
  /** The account's bare JID: its own other clients are not contacts. */
  account: string;
  /** A contact's combined presence changed. */
  onChange(presence: ContactPresence): void;
  onSubscription?(from: string, kind: SubscriptionKind): void;
}

export class ContactPresences {
  readonly #account: string;
  readonly #onChange: (presence: ContactPresence) => void;
  readonly #onSubscription?: (from: string, kind: SubscriptionKind) => void;
  readonly #resources = new Map<string, Map<string, ResourcePresence>>();

  constructor(opts: ContactPresencesOptions) {
    this.#account = opts.account;
    this.#onChange = opts.onChange;
    this.#onSubscription = opts.onSubscription;
  }

  /** A <presence/> stanza from the server. */
  handle(el: XmlElement): void {
    const from = el.attrs.from;
    if (!from) return;
    const contact = bareJid(from);
    if (!contact) return;
    const type = el.attrs.type;
    if (type === 'subscribe' || type === 'subscribed' || type === 'unsubscribe' || type === 'unsubscribed') {
      this.#onSubscription?.(contact, type);
      return;
    }
    if (type !== undefined && type !== 'unavailable') return; // error, probe
    if (contact === this.#account) return; // our own other clients
    const resource = resourceOf(from);
    let resources = this.#resources.get(contact);
    const before = this.of(contact);
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
      if (resources.size >= MAX_RESOURCES && !resources.has(resource)) return;
      resources.set(resource, entry);
    }
    const after = this.of(contact);
    if (before.show === after.show && before.status === after.status) return;
    this.#onChange(after);
  }

  /** A contact's combined presence. */
  of(contact: string): ContactPresence {
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

  /** Forgets every contact's presence (a fresh session gets it all again). */
  clear(): void {
    this.#resources.clear();
  }
}

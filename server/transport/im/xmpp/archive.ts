/**
 * The account's message archive (XEP-0313 with RSM paging): what a device
 * reads to catch up. The server answers a query with one <message/> per
 * archived message, then the <fin/> in the iq result; results are collected
 * per query id in between.
 */
import { randomBytes } from 'node:crypto';
import { type XmlElement, xml } from '@xmpp/client';
import { GatewayError } from '../../../../device-protocol/errors.ts';
import { mapXmppError } from './errors.ts';
import { bareJid } from './jid.ts';
import { type ArchivePage, type ChatMessage, NS } from './types.ts';

export interface ArchiveOptions {
  /** The account's bare JID. */
  account: string;
  /** Sends an iq and resolves with its result (fails at once when the stream is lost). */
  request(iq: XmlElement, timeoutMs: number): Promise<XmlElement>;
  /** Reads a forwarded message (see readChatMessage). */
  read(el: XmlElement, direction: 'in' | 'out', outerStamp?: string): ChatMessage | undefined;
}

export interface ArchiveQuery {
  /** Archive id to read after; without it, the latest `max`. */
  after?: string;
  /** Default 100, at most 500. */
  max?: number;
  /** Return every copy of one origin-id, not just the first. */
  keepDuplicates?: boolean;
}

/** Messages per query to the server (a page of ours may take several). */
const SERVER_PAGE = 100;

export class Archive {
  readonly #account: string;
  readonly #request: ArchiveOptions['request'];
  readonly #read: ArchiveOptions['read'];
  readonly #queries = new Map<string, ChatMessage[]>();

  constructor(opts: ArchiveOptions) {
    this.#account = opts.account;
    this.#request = opts.request;
    this.#read = opts.read;
  }

  /**
   * Reads the archive: the messages after archive id `after`, oldest first;
   * without `after`, the latest `max`. Duplicates of one origin-id (a resend
   * after a lost ack) are returned once.
   */
  async query(opts: ArchiveQuery = {}): Promise<ArchivePage> {
    const max = Math.max(1, Math.min(opts.max ?? 100, 500));
    const messages: ChatMessage[] = [];
    const seen = new Set<string>();
    let after = opts.after;
    let last: string | undefined;
    let complete = false;
    while (messages.length < max) {
      const pageMax = Math.min(SERVER_PAGE, max - messages.length);
      const page = await this.#page(after, pageMax);
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

  /** A <result/> of a message from our own account (anyone can send us one: the caller checks). */
  handleResult(result: XmlElement): void {
    const collected = this.#queries.get(result.attrs.queryid ?? '');
    if (!collected) return;
    const forwarded = result.getChild('forwarded', NS.forward);
    const inner = forwarded?.getChild('message');
    if (!inner || !result.attrs.id) return;
    const direction = bareJid(inner.attrs.from) === this.#account ? 'out' : 'in';
    const chat = this.#read(inner, direction, forwarded?.getChild('delay', NS.delay)?.attrs.stamp);
    if (!chat) return;
    chat.stanzaId = result.attrs.id;
    collected.push(chat);
  }

  async #page(after: string | undefined, max: number): Promise<ArchivePage> {
    const queryid = randomBytes(6).toString('hex');
    const collected: ChatMessage[] = [];
    this.#queries.set(queryid, collected);
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
        const reply = await this.#request(
          xml('iq', { type: 'set' }, xml('query', { xmlns: NS.mam, queryid }, form, set)),
          30_000,
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
      this.#queries.delete(queryid);
    }
  }
}

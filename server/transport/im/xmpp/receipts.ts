/**
 * Delivery receipts (XEP-0184), both ways: a contact's client confirming one
 * of our messages, and our confirmation of a live message once it reached
 * the device's session (never for archive or carbon copies: those were
 * delivered elsewhere, or long ago).
 */
import { randomBytes } from 'node:crypto';
import { type XmlElement, xml } from '@xmpp/client';
import { type ChatMessage, NS } from './types.ts';

export interface ReceiptsOptions {
  send(element: XmlElement): Promise<void>;
  isOnline(): boolean;
  /** A contact's client confirmed delivery of our message `id` (our clientId). */
  onReceipt?(from: string, id: string): void;
}

export class Receipts {
  readonly #send: ReceiptsOptions['send'];
  readonly #isOnline: () => boolean;
  readonly #onReceipt?: (from: string, id: string) => void;
  /** Live messages whose sender asked for a receipt: where to send it. */
  readonly #requests = new WeakMap<ChatMessage, { to: string; id: string }>();
  /** Ids of the receipts this session sends: unique per stream is all they need (no random bytes each). */
  readonly #idPrefix = `r${randomBytes(6).toString('hex')}-`;
  #idSeq = 0;

  constructor(opts: ReceiptsOptions) {
    this.#send = opts.send;
    this.#isOnline = opts.isOnline;
    this.#onReceipt = opts.onReceipt;
  }

  /** A live chat message from `from` (bare): reports the receipt it carries, if any. */
  handle(el: XmlElement, from: string): void {
    const receipt = el.getChild('received', NS.receipts);
    if (receipt?.attrs.id && from) this.#onReceipt?.(from, receipt.attrs.id.slice(0, 256));
  }

  /** Remembers that the sender of `message` (read from `el`) asked for a receipt. */
  remember(message: ChatMessage, el: XmlElement): void {
    const id = el.attrs.id;
    if (id && el.attrs.from && el.getChild('request', NS.receipts)) {
      this.#requests.set(message, { to: el.attrs.from, id: id.slice(0, 256) });
    }
  }

  /** Sends the receipt the sender of `message` asked for, once; best effort. */
  async confirm(message: ChatMessage): Promise<void> {
    const request = this.#requests.get(message);
    if (!request || !this.#isOnline()) return;
    this.#requests.delete(message);
    await this.#send(
      xml(
        'message',
        { to: request.to, id: `${this.#idPrefix}${(++this.#idSeq).toString(36)}` },
        xml('received', { xmlns: NS.receipts, id: request.id }),
      ),
    ).catch(() => {});
  }
}

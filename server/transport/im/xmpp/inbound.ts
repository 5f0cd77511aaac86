/**
 * Where a received <message/> goes: an archive result to the query waiting
 * for it, a carbon copy unwrapped, a chat message (with the receipt it
 * carries or asks for) to the listener, a lone chat state as typing.
 * Archive results and carbons count only from the account itself: anyone
 * can send us a <result/> or a forged carbon.
 */
import type { XmlElement } from '@xmpp/client';
import { carbonOf, readCarbon } from './carbons.ts';
import { readChatState } from './chat-state.ts';
import { bareJid } from './jid.ts';
import { type ChatMessage, type ChatState, NS, type XmppLogger } from './types.ts';

export interface InboundOptions {
  /** The account's bare JID. */
  account: string;
  read(el: XmlElement, direction: 'in' | 'out', outerStamp?: string): ChatMessage | undefined;
  archive: { handleResult(result: XmlElement): void };
  receipts: {
    handle(el: XmlElement, from: string): void;
    remember(message: ChatMessage, el: XmlElement): void;
  };
  onMessage?(message: ChatMessage): void;
  onTyping?(from: string, state: ChatState): void;
  logger?: XmppLogger;
}

export class InboundMessages {
  readonly #opts: InboundOptions;

  constructor(opts: InboundOptions) {
    this.#opts = opts;
  }

  handle(el: XmlElement): void {
    const { account, read, archive, receipts, logger } = this.#opts;
    const type = el.attrs.type ?? 'normal';
    if (type === 'error') {
      logger?.debug({ account, id: el.attrs.id }, 'xmpp message bounced');
      return;
    }
    const fromOwnServer = el.attrs.from === undefined || bareJid(el.attrs.from) === account;
    const mamResult = el.getChild('result', NS.mam);
    if (mamResult) {
      if (fromOwnServer) archive.handleResult(mamResult);
      return;
    }
    const carbon = carbonOf(el);
    if (carbon) {
      if (!fromOwnServer) return;
      const chat = readCarbon(carbon, read);
      if (chat) this.#emit(chat);
      return;
    }
    if (type !== 'chat' && type !== 'normal') return;
    const from = bareJid(el.attrs.from);
    receipts.handle(el, from);
    const chat = read(el, 'in');
    if (chat) {
      receipts.remember(chat, el);
      this.#emit(chat);
      return;
    }
    const state = readChatState(el);
    if (state && from) this.#opts.onTyping?.(from, state);
  }

  #emit(message: ChatMessage): void {
    try {
      this.#opts.onMessage?.(message);
    } catch (err) {
      this.#opts.logger?.warn(
        { err: String(err), account: this.#opts.account },
        'im message listener failed',
      );
    }
  }
}

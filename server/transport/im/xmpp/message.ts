/**
 * Chat messages on the wire: the stanza the account sends for a device's
 * message, and the ChatMessage a received <message/> (live, carbon or from
 * the archive) becomes.
 */
import { type XmlElement, xml } from '@xmpp/client';
import { bareJid } from './jid.ts';
import { sanitizeText } from './text.ts';
import { type ChatMessage, NS } from './types.ts';

/**
 * The stanza of a device's message. The clientId is both the stanza id and
 * the origin-id (XEP-0359), so a resend after a lost ack is recognisable; it
 * asks for a delivery receipt (XEP-0184) and says the sender is active (XEP-0085).
 */
export function chatMessageStanza(to: string, body: string, clientId: string): XmlElement {
  return xml(
    'message',
    { type: 'chat', to, id: clientId },
    xml('body', {}, body),
    xml('origin-id', { xmlns: NS.sid, id: clientId }),
    xml('request', { xmlns: NS.receipts }),
    xml('active', { xmlns: NS.chatstates }),
  );
}

export interface MessageReader {
  /** The account's bare JID. */
  account: string;
  /** Bodies longer than this (UTF-16 units) are cut and flagged. */
  maxBodyChars: number;
  /** For messages without a delay stamp. */
  now: () => number;
}

/**
 * The ChatMessage a <message/> carries, seen from the account: undefined
 * without a body or without valid addresses. `outerStamp` is the delay of
 * the wrapper a forwarded message came in (carbon, archive result).
 */
export function readChatMessage(
  reader: MessageReader,
  el: XmlElement,
  direction: 'in' | 'out',
  outerStamp?: string,
): ChatMessage | undefined {
  const rawBody = el.getChildText('body');
  if (rawBody === null || rawBody === undefined) return undefined;
  const { text, truncated } = sanitizeText(rawBody, reader.maxBodyChars);
  const from = direction === 'in' ? bareJid(el.attrs.from) : reader.account;
  const to = direction === 'in' ? reader.account : bareJid(el.attrs.to);
  if (!from || !to) return undefined;
  const stamp = el.getChild('delay', NS.delay)?.attrs.stamp ?? outerStamp;
  const at =
    stamp && !Number.isNaN(Date.parse(stamp))
      ? new Date(stamp).toISOString()
      : new Date(reader.now()).toISOString();
  const message: ChatMessage = { from, to, body: text, at, direction };
  // Only the id our own server stamped is an archive id we can page from. A sender can put
  // a forged <stanza-id by="us"/> in; a server that does not strip it (Prosody 0.12 does not)
  // appends its own after it, so the last one is the server's.
  const stanzaId = el
    .getChildren('stanza-id', NS.sid)
    .filter((s) => s.attrs.by === reader.account)
    .at(-1)?.attrs.id;
  if (stanzaId) message.stanzaId = stanzaId.slice(0, 256);
  const originId = el.getChild('origin-id', NS.sid)?.attrs.id;
  if (originId) message.originId = originId.slice(0, 256);
  if (truncated) message.truncated = true;
  return message;
}

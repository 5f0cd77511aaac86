/**
 * Message carbons (XEP-0280): copies of what the account's other clients
 * send and receive, so a device sees the whole conversation.
 */
import { type XmlElement, xml } from '@xmpp/client';
import { type ChatMessage, NS, type XmppLogger } from './types.ts';

/** Asks the server for carbons; a server without them is fine, only logged. */
export async function enableCarbons(
  iq: (type: 'set', child: XmlElement) => Promise<unknown>,
  log?: { logger?: XmppLogger; account: string },
): Promise<void> {
  try {
    await iq('set', xml('enable', { xmlns: NS.carbons }));
  } catch (err) {
    log?.logger?.info({ account: log.account, err: String(err) }, 'carbons not available');
  }
}

/**
 * The <received/> or <sent/> wrapper if `el` is a carbon copy. Only one from
 * the account's own bare JID is genuine (XEP-0280 §11); the caller checks.
 */
export function carbonOf(el: XmlElement): XmlElement | undefined {
  return el.getChild('received', NS.carbons) ?? el.getChild('sent', NS.carbons);
}

/** The message a carbon wrapper carries, flagged as a carbon. */
export function readCarbon(
  carbon: XmlElement,
  read: (el: XmlElement, direction: 'in' | 'out', outerStamp?: string) => ChatMessage | undefined,
): ChatMessage | undefined {
  const forwarded = carbon.getChild('forwarded', NS.forward);
  const inner = forwarded?.getChild('message');
  if (!inner) return undefined;
  const direction = carbon.name === 'sent' ? 'out' : 'in';
  const chat = read(inner, direction, forwarded?.getChild('delay', NS.delay)?.attrs.stamp);
  return chat && { ...chat, carbon: true };
}

/**
 * Chat states (XEP-0085): "typing", "paused" and the like. They travel alone
 * in a message without a body (a message with a body implies 'active'), and
 * ours carry a no-store hint so the server does not archive them.
 */
import { type XmlElement, xml } from '@xmpp/client';
import { CHAT_STATES, type ChatState, NS } from './types.ts';

export function chatStateStanza(to: string, state: ChatState): XmlElement {
  return xml(
    'message',
    { type: 'chat', to },
    xml(state, { xmlns: NS.chatstates }),
    xml('no-store', { xmlns: NS.hints }),
  );
}

/** The chat state a message carries, if any. */
export function readChatState(el: XmlElement): ChatState | undefined {
  const state = el.getChildElements().find((c) => c.attrs.xmlns === NS.chatstates)?.name as
    | ChatState
    | undefined;
  return state && CHAT_STATES.includes(state) ? state : undefined;
}

/** Wake-ups as the push service hands them to a channel sender (server/transport/push/channel.ts), for its tests. */
import type { WakeMessage } from '../server/transport/push/channel.ts';

/** `mail` new messages and nothing else: the delivery class of mail (a day, normal urgency). */
export function mailWake(mail: number): WakeMessage {
  return {
    tally: { mail, chat: 0, kind: 'mail', since: 0 },
    kind: 'mail',
    ttl: 86400,
    urgency: 'normal',
    collapseKey: 'wake',
  };
}

/** `chat` chat messages: the delivery class of chat (an hour, high urgency). */
export function chatWake(chat: number): WakeMessage {
  return {
    tally: { mail: 0, chat, kind: 'chat', since: 0 },
    kind: 'chat',
    ttl: 3600,
    urgency: 'high',
    collapseKey: 'wake',
  };
}

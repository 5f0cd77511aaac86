/** im.typing: tells a contact the user is typing or stopped (XEP-0085 chat states). */
import type { MethodDefinition } from '../../types.ts';
import { accountSession, type ImDeps } from '../deps.ts';
import { z } from 'zod';
import { objectOf } from '../../kit/method-input.ts';
import { bareJid, imAccountIdField } from '../fields.ts';
import { CHAT_STATES, type ChatState } from '../xmpp-session.ts';

export function imTypingMethod(
  deps: ImDeps,
): MethodDefinition<{ account: string; to: string; state: ChatState }> {
  return {
    method: 'im.typing',
    input: objectOf({ state: z.enum(CHAT_STATES), account: imAccountIdField, to: bareJid }),
    async handle(ctx, input) {
      const { account, session } = await accountSession(deps, ctx, input.account);
      await session.sendChatState(input.to, input.state);
      return { account: account.id, to: input.to, state: input.state };
    },
  };
}

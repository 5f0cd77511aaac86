/** im.typing: tells a contact the user is typing or stopped (XEP-0085 chat states). */
import type { MethodDefinition } from '../../types.ts';
import { accountSession, type ImDeps } from '../deps.ts';
import { accountField, asObject, bad, bareJidField, reqStr } from '../input.ts';
import { CHAT_STATES, type ChatState } from '../xmpp-session.ts';

export function imTypingMethod(
  deps: ImDeps,
): MethodDefinition<{ account: string; to: string; state: ChatState }> {
  return {
    method: 'im.typing',
    validate(raw) {
      const body = asObject(raw);
      const state = reqStr(body, 'state', 16) as ChatState;
      if (!CHAT_STATES.includes(state)) throw bad('state', `must be one of ${CHAT_STATES.join(', ')}`);
      return { account: accountField(body), to: bareJidField(body, 'to'), state };
    },
    async handle(ctx, input) {
      const { account, session } = await accountSession(deps, ctx, input.account);
      await session.sendChatState(input.to, input.state);
      return { account: account.id, to: input.to, state: input.state };
    },
  };
}

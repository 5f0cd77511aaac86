/** im.subscription.answer: accepts or denies a contact's request (pushed as im.subscription). */
import type { MethodDefinition } from '../../types.ts';
import { accountSession, type ImDeps } from '../deps.ts';
import { z } from 'zod';
import { objectOf } from '../../kit/method-input.ts';
import { bareJid, imAccountIdField } from '../fields.ts';

export function imSubscriptionAnswerMethod(
  deps: ImDeps,
): MethodDefinition<{ account: string; jid: string; accept: boolean }> {
  return {
    method: 'im.subscription.answer',
    input: objectOf({ accept: z.boolean(), account: imAccountIdField, jid: bareJid }),
    async handle(ctx, input) {
      const { account, session } = await accountSession(deps, ctx, input.account);
      await session.answerSubscription(input.jid, input.accept);
      return { account: account.id, jid: input.jid, accept: input.accept };
    },
  };
}

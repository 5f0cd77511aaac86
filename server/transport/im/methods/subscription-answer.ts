/** im.subscription.answer: accepts or denies a contact's request (pushed as im.subscription). */
import type { MethodDefinition } from '../../types.ts';
import { accountSession, type ImDeps } from '../deps.ts';
import { accountField, asObject, bad, bareJidField, optBool } from '../input.ts';

export function imSubscriptionAnswerMethod(
  deps: ImDeps,
): MethodDefinition<{ account: string; jid: string; accept: boolean }> {
  return {
    method: 'im.subscription.answer',
    validate(raw) {
      const body = asObject(raw);
      const accept = optBool(body, 'accept');
      if (accept === undefined) throw bad('accept', 'is required');
      return { account: accountField(body), jid: bareJidField(body, 'jid'), accept };
    },
    async handle(ctx, input) {
      const { account, session } = await accountSession(deps, ctx, input.account);
      await session.answerSubscription(input.jid, input.accept);
      return { account: account.id, jid: input.jid, accept: input.accept };
    },
  };
}

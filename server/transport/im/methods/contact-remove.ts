/** im.contact.remove: removes the contact from the roster (which also cancels both subscriptions). */
import type { MethodDefinition } from '../../types.ts';
import { accountSession, type ImDeps } from '../deps.ts';
import { objectOf } from '../../kit/method-input.ts';
import { bareJid, imAccountIdField } from '../fields.ts';

export function imContactRemoveMethod(deps: ImDeps): MethodDefinition<{ account: string; jid: string }> {
  return {
    method: 'im.contact.remove',
    input: objectOf({ account: imAccountIdField, jid: bareJid }),
    async handle(ctx, input) {
      const { account, session } = await accountSession(deps, ctx, input.account);
      await session.removeContact(input.jid);
      return { account: account.id, jid: input.jid };
    },
  };
}

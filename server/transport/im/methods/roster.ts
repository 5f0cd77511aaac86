/** im.roster: the account's contacts with subscription state and current presence. */
import type { MethodDefinition } from '../../types.ts';
import { accountSession, type ImDeps } from '../deps.ts';
import { accountField, asObject } from '../input.ts';
import { toValue } from '../session-pool.ts';

export function imRosterMethod(deps: ImDeps): MethodDefinition<{ account: string }> {
  return {
    method: 'im.roster',
    validate: (raw) => ({ account: accountField(asObject(raw)) }),
    async handle(ctx, input) {
      const { account, session } = await accountSession(deps, ctx, input.account);
      return toValue({ account: account.id, items: session.roster() });
    },
  };
}

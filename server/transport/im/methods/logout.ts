/** im.logout: ends the account's session and forgets the account (and its sealed password). */
import type { MethodDefinition } from '../../types.ts';
import type { ImDeps } from '../deps.ts';
import { objectOf } from '../../kit/method-input.ts';
import { imAccountIdField } from '../fields.ts';

export function imLogoutMethod(deps: ImDeps): MethodDefinition<{ account: string }> {
  return {
    method: 'im.logout',
    input: objectOf({ account: imAccountIdField }),
    async handle(ctx, input) {
      const account = deps.accounts.get(ctx.deviceId, input.account);
      await deps.sessions.close(account.id);
      deps.sessions.recordLogout(account);
      await deps.accounts.remove(ctx.deviceId, account.id);
      await deps.sent?.removeOwner(account.id);
      await deps.cursors?.remove(ctx.deviceId, account.id);
      return { account: account.id, removed: true };
    },
  };
}

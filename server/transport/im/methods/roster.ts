/** im.roster: the account's contacts with subscription state and current presence; `compact` for rows. */
import { compactRoster } from '../../../../device-protocol/im-compact.ts';
import type { Value } from '../../../../device-protocol/messages.ts';
import type { MethodDefinition } from '../../types.ts';
import { accountSession, type ImDeps } from '../deps.ts';
import { objectOf, optionalFlag } from '../../kit/method-input.ts';
import { imAccountIdField } from '../fields.ts';
import { toValue } from '../session-pool.ts';

const rosterInput = objectOf({ compact: optionalFlag(), account: imAccountIdField }).transform(
  ({ account, compact }) => (compact ? { account, compact } : { account }),
);

export function imRosterMethod(deps: ImDeps): MethodDefinition<{ account: string; compact?: boolean }> {
  return {
    method: 'im.roster',
    input: rosterInput,
    async handle(ctx, input) {
      const { account, session } = await accountSession(deps, ctx, input.account);
      const answer = toValue({ account: account.id, items: session.roster() }) as { [key: string]: Value };
      // `compact: true` (the Handset SDK's default): rows instead of items (SPEC.md §9).
      return input.compact ? compactRoster(answer) : answer;
    },
  };
}

/** im.roster: the account's contacts with subscription state and current presence; `compact` for rows. */
import { compactRoster } from '../../../../device-protocol/im-compact.ts';
import type { Value } from '../../../../device-protocol/messages.ts';
import type { MethodDefinition } from '../../types.ts';
import { accountSession, type ImDeps } from '../deps.ts';
import { accountField, asObject, optBool } from '../input.ts';
import { toValue } from '../session-pool.ts';

export function imRosterMethod(deps: ImDeps): MethodDefinition<{ account: string; compact?: boolean }> {
  return {
    method: 'im.roster',
    validate: (raw) => {
      const body = asObject(raw);
      const compact = optBool(body, 'compact');
      return compact ? { account: accountField(body), compact } : { account: accountField(body) };
    },
    async handle(ctx, input) {
      const { account, session } = await accountSession(deps, ctx, input.account);
      const answer = toValue({ account: account.id, items: session.roster() }) as { [key: string]: Value };
      // `compact: true` (the Handset SDK's default): rows instead of items (SPEC.md §9).
      return input.compact ? compactRoster(answer) : answer;
    },
  };
}

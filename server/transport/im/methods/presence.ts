/** im.presence: sets the account's own presence (kept across reconnects). */
import type { MethodDefinition } from '../../types.ts';
import { accountSession, type ImDeps } from '../deps.ts';
import { accountField, asObject, bad, optStr } from '../input.ts';
import { toValue } from '../session-pool.ts';
import type { PresenceShow } from '../xmpp-session.ts';

const SHOWS: PresenceShow[] = ['available', 'away', 'chat', 'dnd', 'xa', 'unavailable'];

export interface ImPresenceInput {
  account: string;
  show: PresenceShow;
  status?: string;
}

export function imPresenceMethod(deps: ImDeps): MethodDefinition<ImPresenceInput> {
  return {
    method: 'im.presence',
    validate(raw) {
      const body = asObject(raw);
      const show = (optStr(body, 'show', 16) ?? 'available') as PresenceShow;
      if (!SHOWS.includes(show)) throw bad('show', `must be one of ${SHOWS.join(', ')}`);
      const status = optStr(body, 'status', 1024);
      return status === undefined
        ? { account: accountField(body), show }
        : { account: accountField(body), show, status };
    },
    async handle(ctx, input) {
      const { account, session } = await accountSession(deps, ctx, input.account);
      await session.setPresence(input.show, input.status);
      return toValue({ account: account.id, show: input.show, status: input.status });
    },
  };
}

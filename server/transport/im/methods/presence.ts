/** im.presence: sets the account's own presence (kept across reconnects). */
import type { MethodDefinition } from '../../types.ts';
import { accountSession, type ImDeps } from '../deps.ts';
import { z } from 'zod';
import { objectOf, optionalString } from '../../kit/method-input.ts';
import { imAccountIdField } from '../fields.ts';
import { toValue } from '../session-pool.ts';
import type { PresenceShow } from '../xmpp-session.ts';

const SHOWS = ['available', 'away', 'chat', 'dnd', 'xa', 'unavailable'] as const satisfies PresenceShow[];

export interface ImPresenceInput {
  account: string;
  show: PresenceShow;
  status?: string;
}

const presenceInput = objectOf({
  show: z
    .enum(SHOWS)
    .nullish()
    .transform((show): PresenceShow => show ?? 'available'),
  status: optionalString(1024),
  account: imAccountIdField,
}).transform(
  ({ account, show, status }): ImPresenceInput =>
    status === undefined ? { account, show } : { account, show, status },
);

export function imPresenceMethod(deps: ImDeps): MethodDefinition<ImPresenceInput> {
  return {
    method: 'im.presence',
    input: presenceInput,
    async handle(ctx, input) {
      const { account, session } = await accountSession(deps, ctx, input.account);
      await session.setPresence(input.show, input.status);
      return toValue({ account: account.id, show: input.show, status: input.status });
    },
  };
}

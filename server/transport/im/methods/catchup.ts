/**
 * im.catchup: the messages after the device's cursor (an archive id) from the
 * server's archive (XEP-0313), oldest first; without a cursor the latest
 * `max`. The answer's `last` is the next cursor; `complete` false means call
 * again with it.
 */
import type { MethodDefinition } from '../../types.ts';
import { accountSession, type ImDeps } from '../deps.ts';
import { accountField, asObject, optInt, optStr } from '../input.ts';
import { toValue } from '../session-pool.ts';

export interface ImCatchupInput {
  account: string;
  after?: string;
  max: number;
}

export function imCatchupMethod(deps: ImDeps): MethodDefinition<ImCatchupInput> {
  return {
    method: 'im.catchup',
    validate(raw) {
      const body = asObject(raw);
      const input: ImCatchupInput = { account: accountField(body), max: optInt(body, 'max', 1, 500) ?? 100 };
      const after = optStr(body, 'after', 256);
      if (after !== undefined && after !== '') input.after = after;
      return input;
    },
    async handle(ctx, input) {
      const { account, session } = await accountSession(deps, ctx, input.account);
      const page = await session.archive(input.after === undefined ? { max: input.max } : input);
      return toValue({ account: account.id, ...page });
    },
  };
}

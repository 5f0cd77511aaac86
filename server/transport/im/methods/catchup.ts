/**
 * im.catchup: the messages after the device's cursor (an archive id) from the
 * server's archive (XEP-0313), oldest first; without a cursor the latest
 * `max`. The answer's `last` is the next cursor; `complete` false means call
 * again with it.
 */
import type { MethodDefinition } from '../../types.ts';
import { accountSession, type ImDeps } from '../deps.ts';
import { integerOr, objectOf, optionalString } from '../../kit/method-input.ts';
import { imAccountIdField } from '../fields.ts';
import { toValue } from '../session-pool.ts';

export interface ImCatchupInput {
  account: string;
  after?: string;
  max: number;
}

const catchupInput = objectOf({
  account: imAccountIdField,
  max: integerOr(1, 500, 100),
  after: optionalString(256),
}).transform(({ after, ...rest }): ImCatchupInput => (after ? { ...rest, after } : rest));

export function imCatchupMethod(deps: ImDeps): MethodDefinition<ImCatchupInput> {
  return {
    method: 'im.catchup',
    input: catchupInput,
    async handle(ctx, input) {
      const { account, session } = await accountSession(deps, ctx, input.account);
      const page = await session.archive(input.after === undefined ? { max: input.max } : input);
      return toValue({ account: account.id, ...page });
    },
  };
}

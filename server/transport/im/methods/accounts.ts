/** im.accounts: the device's chat accounts and the state of their sessions on this node. */
import { noInput } from '../../kit/method-input.ts';
import type { MethodDefinition } from '../../types.ts';
import type { ImDeps } from '../deps.ts';

export function imAccountsMethod(deps: ImDeps): MethodDefinition<undefined> {
  return {
    method: 'im.accounts',
    input: noInput,
    async handle(ctx) {
      deps.sessions.setPusher(ctx.deviceId, ctx.push, ctx.caps ?? {});
      const accounts = deps.accounts.list(ctx.deviceId).map((a) => ({
        account: a.id,
        jid: a.jid,
        state: deps.sessions.get(a.id)?.state ?? 'stopped',
        ...(a.preset === undefined ? {} : { preset: a.preset }),
        ...(a.provisioned ? { provisioned: true } : {}),
      }));
      return { accounts };
    },
  };
}

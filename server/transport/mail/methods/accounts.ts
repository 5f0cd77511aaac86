/** mail.accounts lists the device's accounts; mail.account.remove forgets one (and closes its session). */
import { noInput, objectOf } from '../../kit/method-input.ts';
import type { MethodDefinition } from '../../types.ts';
import type { MailDeps } from '../deps.ts';
import { mailAccountId } from '../fields.ts';

export function accountsMethod(deps: MailDeps): MethodDefinition<undefined> {
  return {
    method: 'mail.accounts',
    input: noInput,
    async handle(ctx) {
      return {
        accounts: deps.accounts.list(ctx.deviceId).map((a) => ({
          account: a.id,
          address: a.address,
          name: a.name ?? '',
          state: deps.sessions.state(a.id),
          ...(a.preset === undefined ? {} : { preset: a.preset }),
          ...(a.provisioned ? { provisioned: true } : {}),
        })),
      };
    },
  };
}

export function accountRemoveMethod(deps: MailDeps): MethodDefinition<{ account: string }> {
  return {
    method: 'mail.account.remove',
    input: objectOf({ account: mailAccountId }),
    async handle(ctx, input) {
      deps.accounts.get(ctx.deviceId, input.account); // mail.not_found for another device's account
      await deps.watchers?.forget(ctx.deviceId, input.account);
      await deps.sessions.drop(input.account);
      await deps.accounts.remove(ctx.deviceId, input.account);
      await deps.sentMarks.removeOwner(input.account);
      ctx.logger.info({ deviceId: ctx.deviceId, account: input.account }, 'mail account removed');
      return { account: input.account };
    },
  };
}

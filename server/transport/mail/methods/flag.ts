/** mail.flag {account, folder, uids, add?, remove?}: STORE ±FLAGS by UID; other devices see it in their next sync. */
import type { MethodDefinition } from '../../types.ts';
import type { MailDeps } from '../deps.ts';
import { withFolder } from '../imap-session.ts';
import { asObject, bad, folder, reqStr, stringList, uidList } from '../input.ts';

export interface FlagInput {
  account: string;
  folder: string;
  uids: number[];
  add: string[];
  remove: string[];
}

export function flagMethod(deps: MailDeps): MethodDefinition<FlagInput> {
  return {
    method: 'mail.flag',
    validate(raw) {
      const body = asObject(raw);
      const add = stringList(body, 'add', { max: 20, optional: true });
      const remove = stringList(body, 'remove', { max: 20, optional: true });
      if (add.length === 0 && remove.length === 0) throw bad('add', 'add or remove must name a flag');
      for (const f of [...add, ...remove]) {
        if (!/^\\?[A-Za-z0-9$_.-]{1,64}$/.test(f))
          throw bad('add', `flag ${JSON.stringify(f)} is not an IMAP flag`);
      }
      return {
        account: reqStr(body, 'account', { max: 100 }),
        folder: folder(body),
        uids: uidList(body, 'uids'),
        add,
        remove,
      };
    },
    async handle(ctx, input) {
      const account = deps.accounts.get(ctx.deviceId, input.account);
      await deps.sessions.use(account, 'flag', async (c) => {
        await withFolder(c, input.folder, async () => {
          if (input.add.length) await c.messageFlagsAdd(input.uids, input.add, { uid: true });
          if (input.remove.length) await c.messageFlagsRemove(input.uids, input.remove, { uid: true });
        });
      });
      return { uids: input.uids };
    },
  };
}

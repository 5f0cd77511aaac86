/** mail.flag {account, folder, uids, add?, remove?}: STORE ±FLAGS by UID; other devices see it in their next sync. */
import type { MethodDefinition } from '../../types.ts';
import type { MailDeps } from '../deps.ts';
import { withFolder } from '../imap-session.ts';
import { objectOf } from '../../kit/method-input.ts';
import { folderPath, mailAccountId, stringList, uidList } from '../fields.ts';

const IMAP_FLAG = /^\\?[A-Za-z0-9$_.-]{1,64}$/;

const flagInput = objectOf({
  add: stringList(20, { optional: true }),
  remove: stringList(20, { optional: true }),
  account: mailAccountId,
  folder: folderPath,
  uids: uidList(),
}).superRefine(({ add, remove }, ctx) => {
  // Both lists are reported as `add`: the device named no usable flag.
  if (add.length === 0 && remove.length === 0) {
    ctx.addIssue({ code: 'custom', path: ['add'], message: 'add or remove must name a flag' });
  }
  const wrong = [...add, ...remove].find((f) => !IMAP_FLAG.test(f));
  if (wrong !== undefined) {
    ctx.addIssue({
      code: 'custom',
      path: ['add'],
      message: `flag ${JSON.stringify(wrong)} is not an IMAP flag`,
    });
  }
});

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
    input: flagInput,
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

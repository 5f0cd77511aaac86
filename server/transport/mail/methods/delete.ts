/** mail.delete {account, folder, uids}: \Deleted + UID EXPUNGE of exactly these UIDs (never other \Deleted ones). */
import type { MethodDefinition } from '../../types.ts';
import type { MailDeps } from '../deps.ts';
import { withFolder } from '../imap-session.ts';
import { objectOf } from '../../kit/method-input.ts';
import { folderPath, mailAccountId, uidList } from '../fields.ts';

export interface DeleteInput {
  account: string;
  folder: string;
  uids: number[];
}

export function deleteMethod(deps: MailDeps): MethodDefinition<DeleteInput> {
  return {
    method: 'mail.delete',
    input: objectOf({ account: mailAccountId, folder: folderPath, uids: uidList() }),
    async handle(ctx, input) {
      const account = deps.accounts.get(ctx.deviceId, input.account);
      await deps.sessions.use(account, 'delete', async (c) => {
        await withFolder(c, input.folder, () => c.messageDelete(input.uids, { uid: true }));
      });
      return { uids: input.uids };
    },
  };
}

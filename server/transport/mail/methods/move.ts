/** mail.move {account, folder, uids, to}: UID MOVE (or COPY+EXPUNGE where the server lacks MOVE). */
import type { MethodDefinition } from '../../types.ts';
import type { MailDeps } from '../deps.ts';
import { withFolder } from '../imap-session.ts';
import { objectOf } from '../../kit/method-input.ts';
import { folderPath, mailAccountId, uidList } from '../fields.ts';

export interface MoveInput {
  account: string;
  folder: string;
  uids: number[];
  to: string;
}

export function moveMethod(deps: MailDeps): MethodDefinition<MoveInput> {
  return {
    method: 'mail.move',
    input: objectOf({ account: mailAccountId, folder: folderPath, uids: uidList(), to: folderPath }),
    async handle(ctx, input) {
      const account = deps.accounts.get(ctx.deviceId, input.account);
      const res = await deps.sessions.use(account, 'move', async (c) => {
        return withFolder(c, input.folder, () => c.messageMove(input.uids, input.to, { uid: true }));
      });
      // COPYUID gives the new UIDs, so the device can keep the moved messages without a resync.
      const moved =
        res !== false && res.uidMap ? [...res.uidMap].map(([from, to]) => ({ uid: from, newUid: to })) : [];
      return { to: input.to, moved };
    },
  };
}

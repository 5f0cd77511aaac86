/** mail.move {account, folder, uids, to}: UID MOVE (or COPY+EXPUNGE where the server lacks MOVE). */
import type { MethodDefinition } from '../../types.ts';
import type { MailDeps } from '../deps.ts';
import { withFolder } from '../imap-session.ts';
import { asObject, folder, reqStr, uidList } from '../input.ts';

export interface MoveInput {
  account: string;
  folder: string;
  uids: number[];
  to: string;
}

export function moveMethod(deps: MailDeps): MethodDefinition<MoveInput> {
  return {
    method: 'mail.move',
    validate(raw) {
      const body = asObject(raw);
      return {
        account: reqStr(body, 'account', { max: 100 }),
        folder: folder(body),
        uids: uidList(body, 'uids'),
        to: folder(body, 'to'),
      };
    },
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

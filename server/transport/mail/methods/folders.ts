/** mail.folders: every selectable folder with total and unread counts (LIST + STATUS). */
import type { MailDeps } from '../deps.ts';
import { objectOf } from '../../kit/method-input.ts';
import { mailAccountId } from '../fields.ts';
import type { MethodDefinition } from '../../types.ts';

export function foldersMethod(deps: MailDeps): MethodDefinition<{ account: string }> {
  return {
    method: 'mail.folders',
    input: objectOf({ account: mailAccountId }),
    async handle(ctx, input) {
      const account = deps.accounts.get(ctx.deviceId, input.account);
      const list = await deps.sessions.use(account, 'folders', (c) =>
        c.list({ statusQuery: { messages: true, unseen: true } }),
      );
      const folders = list
        .filter((f) => !f.flags.has('\\Noselect') && !f.flags.has('\\NonExistent'))
        .map((f) => ({
          path: f.path,
          name: f.name,
          delimiter: f.delimiter ?? '/',
          specialUse: f.specialUse ?? '',
          total: f.status?.messages ?? 0,
          unread: f.status?.unseen ?? 0,
        }));
      return { folders };
    },
  };
}

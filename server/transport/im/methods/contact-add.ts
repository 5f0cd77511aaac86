/** im.contact.add: puts the contact on the roster and asks for a presence subscription. */
import type { MethodDefinition } from '../../types.ts';
import { accountSession, type ImDeps } from '../deps.ts';
import { accountField, asObject, bad, bareJidField, optStr } from '../input.ts';

export interface ImContactAddInput {
  account: string;
  jid: string;
  name?: string;
  groups: string[];
}

export function imContactAddMethod(deps: ImDeps): MethodDefinition<ImContactAddInput> {
  return {
    method: 'im.contact.add',
    validate(raw) {
      const body = asObject(raw);
      const input: ImContactAddInput = {
        account: accountField(body),
        jid: bareJidField(body, 'jid'),
        groups: [],
      };
      const name = optStr(body, 'name', 256);
      if (name !== undefined) input.name = name;
      const groups = body.groups;
      if (groups !== undefined && groups !== null) {
        if (!Array.isArray(groups) || groups.length > 32)
          throw bad('groups', 'must be a list of at most 32 names');
        for (const g of groups) {
          if (typeof g !== 'string' || g === '' || g.length > 256)
            throw bad('groups', 'names are 1 to 256 characters');
        }
        input.groups = groups as string[];
      }
      return input;
    },
    async handle(ctx, input) {
      const { account, session } = await accountSession(deps, ctx, input.account);
      await session.addContact(input.jid, input.name, input.groups);
      return { account: account.id, jid: input.jid };
    },
  };
}

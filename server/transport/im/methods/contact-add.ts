/** im.contact.add: puts the contact on the roster and asks for a presence subscription. */
import type { MethodDefinition } from '../../types.ts';
import { accountSession, type ImDeps } from '../deps.ts';
import { z } from 'zod';
import { listOf, objectOf, optionalString } from '../../kit/method-input.ts';
import { bareJid, imAccountIdField } from '../fields.ts';

export interface ImContactAddInput {
  account: string;
  jid: string;
  name?: string;
  groups: string[];
}

const contactAddInput = objectOf({
  account: imAccountIdField,
  jid: bareJid,
  name: optionalString(256),
  groups: listOf(z.string().min(1).max(256), {
    max: 32,
    notList: 'must be a list of at most 32 names',
    tooMany: 'must be a list of at most 32 names',
    badEntry: 'names are 1 to 256 characters',
  })
    .nullish()
    .transform((groups) => groups ?? []),
}).transform(({ name, ...rest }): ImContactAddInput => (name === undefined ? rest : { ...rest, name }));

export function imContactAddMethod(deps: ImDeps): MethodDefinition<ImContactAddInput> {
  return {
    method: 'im.contact.add',
    input: contactAddInput,
    async handle(ctx, input) {
      const { account, session } = await accountSession(deps, ctx, input.account);
      await session.addContact(input.jid, input.name, input.groups);
      return { account: account.id, jid: input.jid };
    },
  };
}

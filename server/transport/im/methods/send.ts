/**
 * im.send: answered only once the XMPP server acknowledged the message
 * (XEP-0198). clientId is the stanza id and the origin-id (XEP-0359), so a
 * resend after a failover carries the same id and is recognisable.
 */
import type { MethodDefinition } from '../../types.ts';
import { accountSession, type ImDeps } from '../deps.ts';
import { boundedString, objectOf } from '../../kit/method-input.ts';
import { bareJid, imAccountIdField } from '../fields.ts';
import { hasControlChars } from '../xmpp-session.ts';

export interface ImSendInput {
  account: string;
  to: string;
  body: string;
  clientId: string;
}

/** Prosody's default stanza limit is 256 KiB; a chat body far below that keeps every server happy. */
export const MAX_SEND_BODY_BYTES = 64 * 1024;

const sendInput = objectOf({
  account: imAccountIdField,
  to: bareJid,
  body: boundedString(MAX_SEND_BODY_BYTES)
    .refine((body) => Buffer.byteLength(body) <= MAX_SEND_BODY_BYTES, {
      error: `is larger than ${MAX_SEND_BODY_BYTES} bytes`,
    })
    .refine((body) => !hasControlChars(body), { error: 'holds control characters XML cannot carry' }),
  clientId: boundedString(128).regex(/^[\x21-\x7e]+$/, { error: 'must be printable ASCII without spaces' }),
});

export function imSendMethod(deps: ImDeps): MethodDefinition<ImSendInput> {
  return {
    method: 'im.send',
    input: sendInput,
    async handle(ctx, input) {
      const { account, session } = await accountSession(deps, ctx, input.account);
      await session.send(input.to, input.body, input.clientId);
      // A device on the compact forms knows both from its request (SPEC.md §9): an empty answer.
      if (deps.sessions.compact(ctx.deviceId)) return undefined;
      return { account: account.id, clientId: input.clientId };
    },
  };
}

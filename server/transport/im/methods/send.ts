/**
 * im.send: answered only once the XMPP server acknowledged the message
 * (XEP-0198). clientId is the stanza id and the origin-id (XEP-0359), so a
 * resend after a failover carries the same id and is recognisable.
 */
import type { MethodDefinition } from '../../types.ts';
import { accountSession, type ImDeps } from '../deps.ts';
import { accountField, asObject, bad, bareJidField, reqStr } from '../input.ts';
import { hasControlChars } from '../xmpp-session.ts';

export interface ImSendInput {
  account: string;
  to: string;
  body: string;
  clientId: string;
}

/** Prosody's default stanza limit is 256 KiB; a chat body far below that keeps every server happy. */
export const MAX_SEND_BODY_BYTES = 64 * 1024;

export function imSendMethod(deps: ImDeps): MethodDefinition<ImSendInput> {
  return {
    method: 'im.send',
    validate(raw) {
      const body = asObject(raw);
      const input: ImSendInput = {
        account: accountField(body),
        to: bareJidField(body, 'to'),
        body: reqStr(body, 'body', MAX_SEND_BODY_BYTES),
        clientId: reqStr(body, 'clientId', 128),
      };
      if (Buffer.byteLength(input.body) > MAX_SEND_BODY_BYTES) {
        throw bad('body', `is larger than ${MAX_SEND_BODY_BYTES} bytes`);
      }
      if (hasControlChars(input.body)) {
        throw bad('body', 'holds control characters XML cannot carry');
      }
      if (!/^[\x21-\x7e]+$/.test(input.clientId))
        throw bad('clientId', 'must be printable ASCII without spaces');
      return input;
    },
    async handle(ctx, input) {
      const { account, session } = await accountSession(deps, ctx, input.account);
      await session.send(input.to, input.body, input.clientId);
      // A device on the compact forms knows both from its request (SPEC.md §9): an empty answer.
      if (deps.sessions.compact(ctx.deviceId)) return undefined;
      return { account: account.id, clientId: input.clientId };
    },
  };
}

/**
 * Fields several IM methods take, as zod schemas with their limits (the kit's
 * error map words the failures; see kit/method-input.ts).
 */
import { jid as parseJid } from '@xmpp/client';
import { z } from 'zod';
import { boundedString } from '../kit/method-input.ts';

/** A chat account id (imAccountId: `x` + 16 hex digits). */
export const imAccountIdField = boundedString(64).regex(/^x[0-9a-f]{16}$/, {
  error: 'is not a chat account id',
});

/** A bare JID (user@domain), normalised by @xmpp/jid (domain lower-cased). 3071: three parts of 1023 bytes. */
export const bareJid = boundedString(3071).transform((raw, ctx) => {
  let parsed: ReturnType<typeof parseJid>;
  try {
    parsed = parseJid(raw);
  } catch {
    ctx.addIssue({ code: 'custom', message: 'is not a valid JID', input: raw });
    return z.NEVER;
  }
  if (!parsed.local || !parsed.domain || /\s/.test(raw)) {
    ctx.addIssue({ code: 'custom', message: 'must be a bare JID like user@domain', input: raw });
    return z.NEVER;
  }
  // RFC 7622: each part is at most 1023 bytes.
  if (Buffer.byteLength(parsed.local) > 1023 || Buffer.byteLength(parsed.domain) > 1023) {
    ctx.addIssue({ code: 'custom', message: 'has a part longer than 1023 bytes', input: raw });
    return z.NEVER;
  }
  return parsed.bare().toString();
});

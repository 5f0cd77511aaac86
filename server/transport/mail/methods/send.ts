/**
 * mail.send {account, to, cc?, bcc?, subject, text, attachments?, clientId, inReplyTo?}
 *
 * Answers only after the SMTP server accepted the message (250). Right after
 * the 250, before anything else, a durable "sent" mark is written
 * (sent-marks.ts): a resend with the same clientId finds it and answers
 * `duplicate` without sending again, even when the node died before the copy
 * to Sent. The Message-ID is derived from the clientId, the device and the
 * account, so a resend after a failover carries the same Message-ID; without
 * a mark (a send older than its mark, or one sent by another transport
 * node before a failover) we look for that Message-ID in Sent.
 * The exact bytes sent are APPENDed to Sent.
 *
 * A resend is answered like the original (clientId, messageId, sentCopy,
 * rejected, bytes), with `duplicate: true`: from the mark, or from the copy
 * found in Sent (its size; rejected unknown there, so empty).
 *
 * Two sends of one clientId on this node take turns (the second then finds
 * the first's mark): a device's resend after its timeout, or resends a bus
 * outage held back and let go together, would otherwise both find no mark.
 *
 * Not covered: a node that dies after the SMTP server took the message and
 * before its 250 arrived. SMTP has no way to ask whether a message was taken,
 * so that resend sends again.
 */
import { createHash } from 'node:crypto';
import type { ImapFlow } from 'imapflow';
import MailComposer from 'nodemailer/lib/mail-composer/index.js';
import { z } from 'zod';
import { GatewayError } from '../../../../device-protocol/errors.ts';
import type { Value } from '../../../../device-protocol/messages.ts';
import { KeyedTurns } from '../../kit/keyed-turns.ts';
import { processStalls } from '../../kit/stalls.ts';
import { UnwrittenRecords } from '../../kit/unwritten-records.ts';
import type { MethodDefinition } from '../../types.ts';
import type { MailAccount } from '../account-store.ts';
import type { MailDeps } from '../deps.ts';
import { mailDestination } from '../destination.ts';
import type { SentMark } from '../sent-marks.ts';
import { withFolder } from '../imap-session.ts';
import { boundedString, objectOf, optionalString } from '../../kit/method-input.ts';
import { mailAccountId, stringList } from '../fields.ts';
import { smtpSendError } from '../mail-errors.ts';
import { createSmtpTransport, guardedMessage, smtpWithin } from '../smtp.ts';

export interface SendAttachment {
  name: string;
  type: string;
  content: Uint8Array;
}

export interface SendInput {
  account: string;
  to: string[];
  cc: string[];
  bcc: string[];
  subject: string;
  text: string;
  clientId: string;
  inReplyTo?: string;
  attachments: SendAttachment[];
}

const MAX_TEXT = 1024 * 1024;
/** A send (connect to the 250) may take this many connect timeouts: attachments take time, a drip does not get forever. */
const SEND_DEADLINE_FACTOR = 10;
const MAX_ATTACHMENTS = 20;

const attachmentInput = objectOf({
  name: boundedString(255),
  type: optionalString(255).transform((t) => t || 'application/octet-stream'),
  content: z
    .custom<Uint8Array | string>((c) => c instanceof Uint8Array || typeof c === 'string', {
      error: 'must be bytes or base64',
    })
    .transform((c) => (typeof c === 'string' ? Buffer.from(c, 'base64') : c)),
});

const sendInput = objectOf({
  to: stringList(100),
  // The count first: a list over the limit costs no decoding of its contents.
  attachments: z
    .array(z.unknown(), { error: `must be a list of at most ${MAX_ATTACHMENTS}` })
    .max(MAX_ATTACHMENTS, { error: `must be a list of at most ${MAX_ATTACHMENTS}` })
    .pipe(z.array(attachmentInput))
    .nullish()
    .transform((list): SendAttachment[] => list ?? []),
  inReplyTo: optionalString(1000),
  account: mailAccountId,
  cc: stringList(100, { optional: true }),
  bcc: stringList(100, { optional: true }),
  subject: optionalString(2000).transform((s) => s ?? ''),
  text: optionalString(MAX_TEXT).transform((t) => t ?? ''),
  clientId: boundedString(200),
}).transform(({ inReplyTo, ...rest }): SendInput => ({ ...rest, ...(inReplyTo ? { inReplyTo } : {}) }));

export function messageIdFor(account: MailAccount, deviceId: string, clientId: string): string {
  const domain = account.address.split('@')[1] || 'mmgw.invalid';
  const scope = createHash('sha256').update(`${deviceId}\0${account.id}`).digest('hex').slice(0, 12);
  const local = clientId.replace(/[^A-Za-z0-9._-]/g, (c) => `=${c.charCodeAt(0).toString(16)}`).slice(0, 120);
  return `<${local}.${scope}.mmgw@${domain}>`;
}

/** A pause of this process this long (under the membership TTL of 3.5 s) may have seen it replaced. */
const REPLACED_AFTER_PAUSE_MS = 3000;

export function sendMethod(deps: MailDeps): MethodDefinition<SendInput> {
  const stalls = processStalls();
  // Two sends of one clientId take turns, so that the second finds the first's mark.
  const turns = new KeyedTurns();
  /** Sends acknowledged here whose sent mark is not written yet. */
  const unwritten = new UnwrittenRecords<SentMark>();
  const method: MethodDefinition<SendInput> = {
    method: 'mail.send',
    input: sendInput,
    async handle(ctx, input): Promise<Value> {
      const startedAt = Date.now();
      const account = deps.accounts.get(ctx.deviceId, input.account);
      const messageId = messageIdFor(account, ctx.deviceId, input.clientId);
      const resend = (first: { sentCopy: boolean; rejected: string[]; bytes: number }) => {
        ctx.logger.info(
          { deviceId: ctx.deviceId, account: account.id, clientId: input.clientId },
          'mail resend recognised',
        );
        return { clientId: input.clientId, messageId, ...first, duplicate: true };
      };
      const mark =
        unwritten.get(account.id, input.clientId) ?? deps.sentMarks.get(account.id, input.clientId);
      if (mark !== undefined) {
        return resend({ sentCopy: mark.sentCopy ?? false, rejected: mark.rejected ?? [], bytes: mark.bytes });
      }

      const sentFolder = await deps.sessions
        .use(account, 'send.find-sent', (c) => findSentFolder(c))
        .catch(() => undefined);
      if (sentFolder) {
        const copy = await deps.sessions
          .use(account, 'send.dedup', (c) => sentCopySize(c, sentFolder, messageId))
          .catch(() => undefined);
        if (copy !== undefined) return resend({ sentCopy: true, rejected: [], bytes: copy });
      }

      const composer = new MailComposer({
        from: account.name ? { name: account.name, address: account.address } : account.address,
        to: input.to,
        cc: input.cc,
        bcc: input.bcc,
        subject: input.subject,
        text: input.text,
        messageId,
        date: new Date(ctx.now()),
        ...(input.inReplyTo ? { inReplyTo: input.inReplyTo, references: [input.inReplyTo] } : {}),
        attachments: input.attachments.map((a) => ({
          filename: a.name,
          contentType: a.type,
          content: Buffer.from(a.content.buffer, a.content.byteOffset, a.content.byteLength),
        })),
      });
      const raw = await composer.compile().build();
      // The last moment to give up: past the deadline the device was told request.timeout, and
      // after a pause past the membership TTL the device's resend went to the transport that
      // took this one's devices; that one sends it.
      const replaced = () => stalls.longestSince(startedAt) > REPLACED_AFTER_PAUSE_MS;
      if ((ctx.deadline !== undefined && ctx.now() > ctx.deadline) || replaced()) {
        ctx.logger.info(
          { deviceId: ctx.deviceId, account: account.id, clientId: input.clientId },
          'mail.send past its deadline; not sent',
        );
        throw new GatewayError('request.timeout', 'The send took too long and was not made; send it again.', {
          retryable: true,
        });
      }
      const smtpAt = await mailDestination(deps.policy, 'smtp', account.smtp, ctx.logger);
      const timeout = deps.connectTimeoutMs ?? 15_000;
      const smtp = createSmtpTransport(account.smtp, smtpAt, timeout);
      let rejected: string[] = [];
      try {
        const info = await smtpWithin(smtp, SEND_DEADLINE_FACTOR * timeout, () =>
          smtp.transport.sendMail({
            envelope: { from: account.address, to: [...input.to, ...input.cc, ...input.bcc] },
            // A pause during the exchange counts too: checked again before the final dot.
            raw: guardedMessage(raw, () => !replaced()),
          }),
        );
        // A message is taken with a 250 (RFC 5321); anything else (a server answering ahead
        // of the commands, a stray 235) did not take it, whatever nodemailer concluded.
        if (!/^250[ -]/.test(info.response ?? '')) {
          throw Object.assign(new Error('no 250 for the message'), {
            code: 'EPROTOCOL',
            response: info.response,
          });
        }
        rejected = ((info.rejected ?? []) as (string | { address: string })[]).map((r) =>
          typeof r === 'string' ? r : r.address,
        );
        deps.usage?.({
          deviceId: ctx.deviceId,
          account: account.id,
          op: 'send',
          bytesIn: 0,
          bytesOut: raw.length,
          ok: true,
          ...(account.preset === undefined ? {} : { preset: account.preset }),
        });
      } catch (err) {
        deps.usage?.({
          deviceId: ctx.deviceId,
          account: account.id,
          op: 'send',
          bytesIn: 0,
          bytesOut: 0,
          ok: false,
          ...(account.preset === undefined ? {} : { preset: account.preset }),
        });
        const gerr = smtpSendError(err, ctx.logger);
        ctx.logger.info({ deviceId: ctx.deviceId, account: account.id, code: gerr.code }, 'mail send failed');
        throw gerr;
      } finally {
        smtp.close();
      }
      // The mark first: whatever happens from here on, a resend of this clientId is a duplicate.
      const sentMark = { messageId, at: ctx.now(), bytes: raw.length, rejected };
      await unwritten.write(
        account.id,
        input.clientId,
        sentMark,
        () => deps.sentMarks.put(account.id, input.clientId, sentMark),
        (err) => ctx.logger.error({ err, account: account.id }, 'sent, but the sent mark was not written'),
      );
      await deps.afterSentMark?.();

      let sentCopy = false;
      if (sentFolder) {
        sentCopy = await deps.sessions
          .use(account, 'send.copy-to-sent', (c) => c.append(sentFolder, raw, ['\\Seen']).then((r) => !!r), {
            idempotent: false,
          })
          .catch((err: GatewayError) => {
            ctx.logger.warn({ account: account.id, code: err.code }, 'sent, but the copy to Sent failed');
            return false;
          });
        // Best effort: without it a resend answers sentCopy false, which is what the device may assume anyway.
        if (sentCopy)
          await unwritten.write(
            account.id,
            input.clientId,
            { ...sentMark, sentCopy },
            () => deps.sentMarks.put(account.id, input.clientId, { ...sentMark, sentCopy }),
            () => {},
          );
      }
      ctx.logger.info(
        { deviceId: ctx.deviceId, account: account.id, clientId: input.clientId, bytesOut: raw.length },
        'mail sent',
      );
      return { clientId: input.clientId, messageId, sentCopy, rejected, bytes: raw.length };
    },
  };
  return {
    ...method,
    handle: (ctx, input) =>
      turns.run(`${ctx.deviceId}\0${input.account}\0${input.clientId}`, () => method.handle(ctx, input)),
  };
}

async function findSentFolder(client: ImapFlow): Promise<string | undefined> {
  const list = await client.list();
  return (
    list.find((f) => f.specialUse === '\\Sent') ?? list.find((f) => /^sent( items| mail)?$/i.test(f.name))
  )?.path;
}

/** The size of the copy in Sent with this Message-ID; undefined when there is none. */
async function sentCopySize(
  client: ImapFlow,
  folder: string,
  messageId: string,
): Promise<number | undefined> {
  return withFolder(client, folder, async () => {
    const found = await client.search({ header: { 'message-id': messageId } }, { uid: true });
    const uid = Array.isArray(found) ? found[0] : undefined;
    if (uid === undefined) return undefined;
    const row = await client.fetchOne(String(uid), { size: true }, { uid: true });
    return row ? (row.size ?? 0) : 0;
  });
}

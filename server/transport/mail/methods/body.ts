/**
 * mail.body {account, folder, uid, maxBytes?, offset?}
 *
 * The best text for a handset: the text/plain part, else the HTML part as
 * readable text; always UTF-8; cut to the device's byte budget with `more`
 * (the character offset to ask for next) when there is more. Attachments are
 * listed, never fetched: only the text part travels from the IMAP server, and
 * at most TEXT_PART_MAX_BYTES of it, so a 25 MB message costs no more memory
 * than its text.
 *
 * Each image the transcoder reads is listed with its `variants`: `thumb` and
 * `screen` in the device's format, with their size once a variant has been
 * made on this node (or the transcode.* code it failed with), and `original`
 * with its size, always. Inline images (the ones the text refers to) carry
 * `variant: "thumb"`: what a handset fetches for them unless the user asks
 * for more.
 *
 * The device's service profile bounds both: `bodyTruncateBytes` caps the text
 * budget (whatever maxBytes asks), and attachments (and image originals) over
 * `maxAttachmentBytes` are listed with `error: "policy.attachment_too_large"`.
 *
 * A message past MIME_LIMITS (mime-limits.ts) is mail.too_complex; header
 * fields are cut to their documented sizes (field-caps.ts); a large text part
 * is decoded in the MIME workers (mime-pool.ts), never on the event loop.
 */
import type { ImapFlow } from 'imapflow';
import { GatewayError } from '../../../../device-protocol/errors.ts';
import type { Value } from '../../../../device-protocol/messages.ts';
import type { MethodDefinition } from '../../types.ts';
import type { MailDeps } from '../deps.ts';
import {
  deviceVariantSpecs,
  ImageVariantMemo,
  isTranscodableImage,
  memoFor,
  TRANSCODED_VARIANTS,
} from '../image-variants.ts';
import { withFolder } from '../imap-session.ts';
import { fetchRow } from '../fetch-offload.ts';
import { capAddress, capAddressList, capMessageId, capSubject } from '../field-caps.ts';
import { findTextPart, listAttachments, readableStructure } from '../headers.ts';
import { integerOr, objectOf, optionalInteger } from '../../kit/method-input.ts';
import { folderPath, mailAccountId, uid } from '../fields.ts';
import { tooComplex } from '../mime-limits.ts';
import { type MimePool, renderTextPart } from '../mime-pool.ts';
import { truncateUtf8 } from '../mime-text.ts';

export interface BodyInput {
  account: string;
  folder: string;
  uid: number;
  maxBytes?: number;
  offset: number;
}

const bodyInput = objectOf({
  maxBytes: optionalInteger(256, 1024 * 1024),
  account: mailAccountId,
  folder: folderPath,
  uid,
  offset: integerOr(0, 1 << 30, 0),
}).transform(
  (b): BodyInput => ({
    account: b.account,
    folder: b.folder,
    uid: b.uid,
    ...(b.maxBytes === undefined ? {} : { maxBytes: b.maxBytes }),
    offset: b.offset,
  }),
);

/** Raw bytes of a text part we are willing to read; beyond this the text is cut (and says so). */
export const TEXT_PART_MAX_BYTES = 4 * 1024 * 1024;

/**
 * Text one answer carries at most, whatever maxBytes asks: a frame string may
 * have 256 KiB (device-protocol DEFAULT_LIMITS), and a longer text made the
 * answer impossible to encode. The device pages with `more`.
 */
export const TEXT_ANSWER_MAX_BYTES = 192 * 1024;

export function bodyMethod(deps: MailDeps): MethodDefinition<BodyInput> {
  return {
    method: 'mail.body',
    input: bodyInput,
    async handle(ctx, input) {
      const account = deps.accounts.get(ctx.deviceId, input.account);
      // The service profile's bodyTruncateBytes caps what the device may ask for.
      const policy = ctx.profile?.policies.bodyTruncateBytes;
      const asked = input.maxBytes ?? deps.bodyBudgetBytes ?? 16 * 1024;
      const budget = Math.min(policy === undefined ? asked : Math.min(asked, policy), TEXT_ANSWER_MAX_BYTES);
      const maxAttachment = ctx.profile?.policies.maxAttachmentBytes;
      const overPolicy = (size: number) => maxAttachment !== undefined && size > maxAttachment;
      const rendered = await deps.sessions.use(account, 'body', async (client) => {
        return withFolder(client, input.folder, () => renderBody(client, input.uid, deps.mime));
      });
      // The device's specs (a registry lookup) only when there is an image to offer.
      const { specs } = rendered.attachments.some((a) => isTranscodableImage(a.type))
        ? await deviceVariantSpecs(ctx.deviceId, ctx.caps, deps.mediaProfiles)
        : { specs: undefined };
      const memo = memoFor(deps);
      const attachments = rendered.attachments.map((a): Value => {
        const { inline, ...rest } = a;
        const blocked: Record<string, Value> = overPolicy(a.size)
          ? { error: 'policy.attachment_too_large' }
          : {};
        const listed = { ...rest, inline, ...blocked };
        if (specs === undefined || !isTranscodableImage(a.type)) return listed;
        const variants: Value[] = TRANSCODED_VARIANTS.map((name) => {
          const spec = specs[name];
          const key = ImageVariantMemo.key(
            account.id,
            input.folder,
            rendered.uidValidity,
            input.uid,
            a.part,
            spec,
          );
          const known = memo.outcome(key);
          const offered: Record<string, Value> = { name, format: spec.format };
          if (known && 'size' in known) {
            offered.size = known.size;
            offered.width = known.width;
            offered.height = known.height;
          } else if (known) {
            offered.error = known.error;
          }
          return offered;
        });
        variants.push({ name: 'original', format: a.type.replace(/^image\//, ''), size: a.size, ...blocked });
        return { ...listed, variants, ...(inline ? { variant: 'thumb' } : {}) };
      });
      const rest = rendered.text.slice(input.offset);
      const { text, truncated } = truncateUtf8(rest, budget);
      ctx.logger.debug(
        { deviceId: ctx.deviceId, account: account.id, uid: input.uid, bytes: text.length },
        'mail body',
      );
      return {
        uid: input.uid,
        text,
        more: truncated ? input.offset + text.length : null,
        ...(rendered.cut ? { cut: true } : {}),
        format: rendered.format,
        attachments,
        subject: rendered.subject,
        from: rendered.from,
        to: rendered.to,
        cc: rendered.cc,
        date: rendered.date,
        messageId: rendered.messageId,
      };
    },
  };
}

interface Rendered {
  text: string;
  format: 'plain' | 'html' | 'none';
  cut: boolean;
  attachments: { part: string; name: string; type: string; size: number; inline: boolean }[];
  uidValidity: string;
  subject: string;
  from: Value;
  to: Value;
  cc: Value;
  date: number;
  messageId: string;
}

async function renderBody(client: ImapFlow, uid: number, mime: MimePool | undefined): Promise<Rendered> {
  const msg = await fetchRow(client, uid, { uid: true, bodyStructure: true, envelope: true, size: true });
  if (msg === false) throw new GatewayError('mail.not_found', `no message with UID ${uid}`, { field: 'uid' });
  // The message exists: a structure missing, unreadable or past the limits is too complex, not absent.
  const structure = readableStructure(msg);
  if (!structure) throw tooComplex('uid', msg.unreadable === 'busy');
  const ref = findTextPart(structure);
  let text = '';
  let cut = false;
  if (ref) {
    const part = await fetchRow(client, uid, {
      uid: true,
      bodyParts: [{ key: ref.part, start: 0, maxLength: TEXT_PART_MAX_BYTES }],
    });
    const raw = part ? (part.bodyParts?.get(ref.part) ?? part.bodyParts?.values().next().value) : undefined;
    if (raw) {
      cut = raw.length >= TEXT_PART_MAX_BYTES;
      text = await renderTextPart(mime, raw.subarray(0, TEXT_PART_MAX_BYTES), {
        encoding: ref.encoding,
        charset: ref.charset,
        html: ref.type === 'text/html',
      });
    }
  }
  const env = msg.envelope;
  const uidValidity = String(client.mailbox ? client.mailbox.uidValidity : 0n);
  const date = env?.date ? new Date(env.date).getTime() : 0;
  return {
    text,
    format: ref ? (ref.type === 'text/html' ? 'html' : 'plain') : 'none',
    cut,
    attachments: listAttachments(structure).map((a) => ({
      part: a.part,
      name: a.name,
      type: a.type,
      size: a.size,
      inline: a.inline,
    })),
    uidValidity,
    subject: capSubject(env?.subject),
    from: env?.from?.[0] ? capAddress(env.from[0]) : null,
    to: capAddressList(env?.to),
    cc: capAddressList(env?.cc),
    date: Number.isNaN(date) ? 0 : date,
    messageId: capMessageId(env?.messageId),
  };
}

/**
 * mail.attachment {account, folder, uid, part, variant?, offset?, length?}
 *
 * One chunk of an attachment, so a handset pulls a large file piece by piece
 * and resumes from the last offset it holds after a drop-out.
 *
 * `variant` (default `original`):
 * - `original`: the decoded bytes as stored. With the IMAP BINARY extension
 *   (Dovecot has it) the server decodes and cuts the range
 *   (BINARY.PEEK[part]<offset.length>), so the node holds one chunk at a time
 *   whatever the attachment's size. Without BINARY, the decoded stream is read
 *   up to offset + length and the head is dropped: correct, costlier.
 * - `thumb`, `screen` (images only): the source is fetched (refused before
 *   fetching when it is over the transcoder's 25 MB source limit, and cut off
 *   while streaming if it turns out bigger), shrunk by a transcoder over the
 *   bus to the device's spec (image-variants.ts), and cut into chunks the same
 *   way. The variant's bytes are remembered on the node for a while, so the
 *   following chunks cost neither IMAP nor the transcoder; after that the
 *   transcoder's content-addressed cache answers.
 * An original larger than the service profile's maxAttachmentBytes is
 * refused (policy.attachment_too_large) before any byte is fetched; its
 * thumb and screen variants stay offered.
 * A transcoder failure (hostile or unsupported input, busy, timeout) is a
 * typed transcode.* error whose message says the original is still offered
 * with its size; mail.body then lists the variant with that error.
 */
import type { ImapFlow, MessageStructureObject } from 'imapflow';
import { z } from 'zod';
import { GatewayError, toGatewayError } from '../../../../device-protocol/errors.ts';
import { type ImageVariantSpec, TranscoderClient } from '../../../../transcoder/index.ts';
import type { MethodContext, MethodDefinition } from '../../types.ts';
import type { MailAccount } from '../account-store.ts';
import type { MailDeps } from '../deps.ts';
import { fetchRow } from '../fetch-offload.ts';
import { listAttachments, readableStructure } from '../headers.ts';
import { tooComplex } from '../mime-limits.ts';
import {
  deviceVariantSpecs,
  ImageVariantMemo,
  isTranscodableImage,
  memoFor,
  SOURCE_LIMIT_BYTES,
  type TranscodedVariantName,
} from '../image-variants.ts';
import { withFolder } from '../imap-session.ts';
import { boundedString, integerOr, objectOf } from '../../kit/method-input.ts';
import { folderPath, mailAccountId, uid } from '../fields.ts';

export type AttachmentVariant = 'original' | TranscodedVariantName;

export interface AttachmentInput {
  account: string;
  folder: string;
  uid: number;
  part: string;
  variant: AttachmentVariant;
  offset: number;
  length: number;
}

export const ATTACHMENT_CHUNK_DEFAULT = 64 * 1024;
export const ATTACHMENT_CHUNK_MAX = 512 * 1024;
/** A request may wait in a transcoder's queue, then run up to its job limit. */
const TRANSCODE_TIMEOUT_MS = 30_000;

const attachmentInput = objectOf({
  part: boundedString(64).regex(/^[1-9]\d{0,4}(\.[1-9]\d{0,4}){0,20}$/, {
    error: 'must be a MIME part number like 2 or 1.2',
  }),
  variant: z
    .enum(['original', 'thumb', 'screen'])
    .nullish()
    .transform((v): AttachmentVariant => v ?? 'original'),
  account: mailAccountId,
  folder: folderPath,
  uid,
  offset: integerOr(0, 2 ** 40, 0),
  length: integerOr(1, ATTACHMENT_CHUNK_MAX, ATTACHMENT_CHUNK_DEFAULT),
});

export function attachmentMethod(deps: MailDeps): MethodDefinition<AttachmentInput> {
  return {
    method: 'mail.attachment',
    input: attachmentInput,
    async handle(ctx, input) {
      const account = deps.accounts.get(ctx.deviceId, input.account);
      if (input.variant !== 'original') return variantChunk(deps, ctx, account, input);
      return deps.sessions.use(account, 'attachment', (client) =>
        withFolder(client, input.folder, async () => {
          const { node, meta } = await locatePart(client, input);
          const size = meta?.size ?? node.size ?? 0;
          const max = ctx.profile?.policies.maxAttachmentBytes;
          // The service profile's limit, on the decoded size mail.body listed, before anything is fetched.
          if (max !== undefined && size > max) {
            throw new GatewayError(
              'policy.attachment_too_large',
              `The attachment has about ${size} bytes; this device's service profile allows ${max}.` +
                (isTranscodableImage(node.type ?? '') ? ' Variants thumb and screen are still offered.' : ''),
              { field: 'part' },
            );
          }
          const data = await readRange(client, input);
          return {
            uid: input.uid,
            part: input.part,
            variant: 'original',
            offset: input.offset,
            data,
            // A short chunk is the last one: the exact decoded size is only known at the end.
            done: data.length < input.length,
            name: meta?.name ?? '',
            type: (node.type ?? 'application/octet-stream').toLowerCase(),
            size,
          };
        }),
      );
    },
  };
}

async function locatePart(
  client: ImapFlow,
  input: Pick<AttachmentInput, 'uid' | 'part'>,
): Promise<{ node: MessageStructureObject; meta: ReturnType<typeof listAttachments>[number] | undefined }> {
  const msg = await fetchRow(client, input.uid, { uid: true, bodyStructure: true });
  if (msg === false)
    throw new GatewayError('mail.not_found', `no message with UID ${input.uid}`, { field: 'uid' });
  // The message exists: a structure the gateway does not read is too complex, not absent.
  const structure = readableStructure(msg);
  if (!structure) throw tooComplex('uid', msg.unreadable === 'busy');
  const node = findPart(structure, input.part);
  if (!node || node.childNodes?.length) {
    throw new GatewayError('mail.not_found', `message ${input.uid} has no part ${input.part}`, {
      field: 'part',
    });
  }
  const meta = listAttachments(structure).find((a) => a.part === input.part);
  return { node, meta };
}

/** A transcoder failure as the device sees it: the same code, and where the original is. */
function offerOriginal(err: unknown, originalSize: number): GatewayError {
  let gw = toGatewayError(err);
  if (gw.code === 'bus.no_responders') {
    gw = new GatewayError('transcode.busy', 'No transcoder is running.', {
      retryable: true,
      retryAfterMs: 5000,
    });
  } else if (gw.code === 'bus.timeout') {
    gw = new GatewayError('transcode.timeout', 'The transcoder did not answer in time.', { retryable: true });
  }
  return new GatewayError(
    gw.code,
    `${gw.message} The original (${originalSize} bytes) is still offered as variant "original".`,
    {
      retryable: gw.retryable,
      field: 'variant',
      ...(gw.retryAfterMs === undefined ? {} : { retryAfterMs: gw.retryAfterMs }),
    },
  );
}

async function variantChunk(
  deps: MailDeps,
  ctx: MethodContext,
  account: MailAccount,
  input: AttachmentInput,
): Promise<Record<string, any>> {
  const accountId = account.id;
  const variant = input.variant as TranscodedVariantName;
  const { specs } = await deviceVariantSpecs(ctx.deviceId, ctx.caps, deps.mediaProfiles);
  const spec: ImageVariantSpec = specs[variant];
  const memo = memoFor(deps);

  // Phase 1, on the IMAP session: the part's description and, unless a recent variant is at hand, its bytes.
  const fetched = await deps.sessions.use(account, 'attachment', (client) =>
    withFolder(client, input.folder, async () => {
      const { node, meta } = await locatePart(client, input);
      const type = (node.type ?? 'application/octet-stream').toLowerCase();
      const originalSize = meta?.size ?? node.size ?? 0;
      const uidValidity = client.mailbox ? client.mailbox.uidValidity : 0n;
      const key = ImageVariantMemo.key(accountId, input.folder, uidValidity, input.uid, input.part, spec);
      const base = { name: meta?.name ?? '', type, originalSize, key };
      if (!isTranscodableImage(type)) {
        const err = new GatewayError(
          'transcode.unsupported_format',
          `A ${type} part has no ${variant} variant.`,
        );
        memo.remember(key, { error: err.code });
        throw offerOriginal(err, originalSize);
      }
      const cached = memo.bytesOf(key);
      if (cached !== undefined) return { ...base, source: undefined, cached };
      // The size from BODYSTRUCTURE is known before anything is fetched: refuse early.
      if (originalSize > SOURCE_LIMIT_BYTES) {
        const err = new GatewayError(
          'transcode.too_large',
          `The source has about ${originalSize} bytes; the transcoder takes at most ${SOURCE_LIMIT_BYTES}.`,
        );
        memo.remember(key, { error: err.code });
        throw offerOriginal(err, originalSize);
      }
      const source = await readWhole(client, input.uid, input.part, SOURCE_LIMIT_BYTES);
      if (source === undefined) {
        const err = new GatewayError(
          'transcode.too_large',
          `The source is larger than the ${SOURCE_LIMIT_BYTES} bytes the transcoder takes.`,
        );
        memo.remember(key, { error: err.code });
        throw offerOriginal(err, originalSize);
      }
      return { ...base, source, cached: undefined };
    }),
  );

  // Phase 2, off the IMAP session (it serves the device's other requests meanwhile): the transcoder.
  let bytes = fetched.cached;
  let described = memo.outcome(fetched.key);
  if (bytes === undefined) {
    const client = new TranscoderClient(ctx.bus, { timeoutMs: TRANSCODE_TIMEOUT_MS });
    const sourceBytes = fetched.source?.byteLength;
    try {
      // Handed over: nothing here reads the source again, and the in-process bus then moves it instead of copying.
      const reply = await client.image(fetched.source as Uint8Array, spec, { handOver: true });
      bytes = reply.bytes;
      described = {
        size: reply.bytes.byteLength,
        format: reply.format,
        width: reply.width,
        height: reply.height,
      };
      memo.remember(fetched.key, described, reply.bytes);
      ctx.logger.debug(
        {
          uid: input.uid,
          part: input.part,
          variant,
          in: sourceBytes,
          out: bytes.byteLength,
          cached: reply.cached,
        },
        'attachment variant',
      );
    } catch (err) {
      const gw = toGatewayError(err);
      // Busy and timeouts pass; a verdict on the input (bad, too big, unsupported) is remembered for the listing.
      if (!gw.retryable && gw.code.startsWith('transcode.')) memo.remember(fetched.key, { error: gw.code });
      throw offerOriginal(gw, fetched.originalSize);
    }
  }
  const info = described && 'size' in described ? described : undefined;
  const data = bytes.subarray(Math.min(input.offset, bytes.byteLength), input.offset + input.length);
  return {
    uid: input.uid,
    part: input.part,
    variant,
    offset: input.offset,
    data: new Uint8Array(data),
    done: input.offset + data.byteLength >= bytes.byteLength,
    name: fetched.name,
    type: `image/${info?.format ?? spec.format}`,
    size: bytes.byteLength,
    ...(info ? { width: info.width, height: info.height } : {}),
    originalType: fetched.type,
    originalSize: fetched.originalSize,
  };
}

function findPart(root: MessageStructureObject, part: string): MessageStructureObject | undefined {
  if ((root.part ?? (root.childNodes?.length ? '' : '1')) === part) return root;
  for (const child of root.childNodes ?? []) {
    const found = findPart(child, part);
    if (found) return found;
  }
  return undefined;
}

/** The whole decoded part, streamed; undefined as soon as it passes `limit` bytes (the rest is not read). */
async function readWhole(
  client: ImapFlow,
  uid: number,
  part: string,
  limit: number,
): Promise<Uint8Array | undefined> {
  const { content } = await client.download(String(uid), part, { uid: true, maxBytes: limit + 1 });
  if (!content) return new Uint8Array(0);
  const chunks: Buffer[] = [];
  let seen = 0;
  for await (const chunk of content as AsyncIterable<Buffer>) {
    seen += chunk.length;
    if (seen > limit) {
      (content as { destroy?: () => void }).destroy?.();
      return undefined;
    }
    chunks.push(chunk);
  }
  const all = Buffer.concat(chunks, seen);
  // A plain Uint8Array: msgpackr packs it without the Buffer detour (transcoder/protocol.ts).
  return new Uint8Array(all.buffer, all.byteOffset, all.byteLength);
}

async function readRange(client: ImapFlow, input: AttachmentInput): Promise<Uint8Array> {
  if (client.capabilities.has('BINARY')) {
    const res = await fetchRow(
      client,
      input.uid,
      { uid: true, bodyParts: [{ key: input.part, start: input.offset, maxLength: input.length }] },
      { binary: true },
    );
    const buf =
      res === false ? undefined : (res.bodyParts?.get(input.part) ?? res.bodyParts?.values().next().value);
    return new Uint8Array(buf ?? Buffer.alloc(0));
  }
  const { content } = await client.download(String(input.uid), input.part, {
    uid: true,
    maxBytes: input.offset + input.length,
  });
  if (!content) return new Uint8Array(0);
  const chunks: Buffer[] = [];
  let seen = 0;
  for await (const chunk of content as AsyncIterable<Buffer>) {
    const start = Math.max(0, input.offset - seen);
    if (start < chunk.length) chunks.push(chunk.subarray(start));
    seen += chunk.length;
  }
  return new Uint8Array(Buffer.concat(chunks).subarray(0, input.length));
}

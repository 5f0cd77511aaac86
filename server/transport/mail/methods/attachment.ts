/**
 * mail.attachment {account, folder, uid, part, offset?, length?}
 *
 * One chunk of an attachment's decoded bytes, so a handset pulls a large file
 * piece by piece and resumes from the last offset it holds after a drop-out.
 * With the IMAP BINARY extension (Dovecot has it) the server decodes and cuts
 * the range (BINARY.PEEK[part]<offset.length>), so the node holds one chunk at
 * a time whatever the attachment's size. Without BINARY, the decoded stream is
 * read up to offset + length and the head is dropped: correct, costlier.
 */
import type { ImapFlow, MessageStructureObject } from 'imapflow';
import { GatewayError } from '../../../../device-protocol/errors.ts';
import type { MethodDefinition } from '../../types.ts';
import type { MailDeps } from '../deps.ts';
import { listAttachments } from '../headers.ts';
import { withFolder } from '../imap-session.ts';
import { asObject, bad, folder, reqInt, reqStr } from '../input.ts';

export interface AttachmentInput {
  account: string;
  folder: string;
  uid: number;
  part: string;
  offset: number;
  length: number;
}

export const ATTACHMENT_CHUNK_DEFAULT = 64 * 1024;
export const ATTACHMENT_CHUNK_MAX = 512 * 1024;

export function attachmentMethod(deps: MailDeps): MethodDefinition<AttachmentInput> {
  return {
    method: 'mail.attachment',
    validate(raw) {
      const body = asObject(raw);
      const part = reqStr(body, 'part', { max: 64 });
      if (!/^[1-9]\d{0,4}(\.[1-9]\d{0,4}){0,20}$/.test(part))
        throw bad('part', 'must be a MIME part number like 2 or 1.2');
      return {
        account: reqStr(body, 'account', { max: 100 }),
        folder: folder(body),
        uid: reqInt(body, 'uid', { min: 1, max: 0xffffffff }),
        part,
        offset: reqInt(body, 'offset', { min: 0, max: 2 ** 40, default: 0 }),
        length: reqInt(body, 'length', {
          min: 1,
          max: ATTACHMENT_CHUNK_MAX,
          default: ATTACHMENT_CHUNK_DEFAULT,
        }),
      };
    },
    async handle(ctx, input) {
      const account = deps.accounts.get(ctx.deviceId, input.account);
      return deps.sessions.use(account, 'attachment', (client) =>
        withFolder(client, input.folder, async () => {
          const msg = await client.fetchOne(
            String(input.uid),
            { uid: true, bodyStructure: true },
            { uid: true },
          );
          if (msg === false || !msg.bodyStructure) {
            throw new GatewayError('mail.not_found', `no message with UID ${input.uid}`, { field: 'uid' });
          }
          const node = findPart(msg.bodyStructure, input.part);
          if (!node || node.childNodes?.length) {
            throw new GatewayError('mail.not_found', `message ${input.uid} has no part ${input.part}`, {
              field: 'part',
            });
          }
          const meta = listAttachments(msg.bodyStructure).find((a) => a.part === input.part);
          const data = await readRange(client, input);
          return {
            uid: input.uid,
            part: input.part,
            offset: input.offset,
            data,
            // A short chunk is the last one: the exact decoded size is only known at the end.
            done: data.length < input.length,
            name: meta?.name ?? '',
            type: (node.type ?? 'application/octet-stream').toLowerCase(),
            size: meta?.size ?? node.size ?? 0,
          };
        }),
      );
    },
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

async function readRange(client: ImapFlow, input: AttachmentInput): Promise<Uint8Array> {
  if (client.capabilities.has('BINARY')) {
    const res = await client.fetchOne(
      String(input.uid),
      { uid: true, bodyParts: [{ key: input.part, start: input.offset, maxLength: input.length }] },
      { uid: true, binary: true },
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

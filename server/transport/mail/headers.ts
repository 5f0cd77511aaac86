/**
 * Compact message headers for mail.sync / mail.new: what a handset shows in a
 * list, and nothing more (the bytes-on-the-air budget is the point of mmgw).
 * The preview comes from a partial fetch of the best text part, not the whole body.
 *
 * Every field is cut to its documented size (field-caps.ts), so a page of
 * headers always fits a frame. A message whose structure is past MIME_LIMITS
 * (or unreadable) is listed all the same, with no attachment count and no preview.
 */
import type { ImapFlow, MessageStructureObject } from 'imapflow';
import type { Value } from '../../../device-protocol/messages.ts';
import { type FetchedMessage, fetchRows } from './fetch-offload.ts';
import { capAddress, capFlags, capSubject, cutUtf8, FIELD_CAPS } from './field-caps.ts';
import { structureWithinLimits } from './mime-limits.ts';
import { makePreview, renderText } from './mime-text.ts';

export interface MailHeader {
  [key: string]: Value;
  uid: number;
  from: { name: string; address: string };
  subject: string;
  /** Epoch milliseconds (Date header, else internal date). */
  date: number;
  size: number;
  flags: string[];
  /** Number of attachments. */
  attachments: number;
  preview: string;
}

export interface TextPartRef {
  part: string;
  type: 'text/plain' | 'text/html';
  encoding?: string;
  charset?: string;
  size?: number;
}

export interface AttachmentRef {
  part: string;
  name: string;
  type: string;
  size: number;
  encoding?: string;
  inline: boolean;
  contentId?: string;
}

/** The text/plain part if any, else the first text/html part (alternatives, mixed, related). */
export function findTextPart(root: MessageStructureObject | undefined): TextPartRef | undefined {
  if (!root) return undefined;
  let plain: TextPartRef | undefined;
  let html: TextPartRef | undefined;
  const walk = (node: MessageStructureObject) => {
    const type = (node.type ?? '').toLowerCase();
    if (node.childNodes?.length) {
      if (type === 'message/rfc822') return; // an attached message's text is not this message's text
      for (const child of node.childNodes) walk(child);
      return;
    }
    if (node.disposition?.toLowerCase() === 'attachment') return;
    const ref = {
      part: node.part ?? '1',
      encoding: node.encoding,
      charset: node.parameters?.charset,
      size: node.size,
    };
    if (type === 'text/plain' && !plain) plain = { ...ref, type: 'text/plain' };
    if (type === 'text/html' && !html) html = { ...ref, type: 'text/html' };
  };
  walk(root);
  return plain ?? html;
}

export function listAttachments(root: MessageStructureObject | undefined): AttachmentRef[] {
  const out: AttachmentRef[] = [];
  const text = findTextPart(root);
  const walk = (node: MessageStructureObject) => {
    const type = (node.type ?? 'application/octet-stream').toLowerCase();
    if (node.childNodes?.length && type.startsWith('multipart/')) {
      for (const child of node.childNodes) walk(child);
      return;
    }
    const part = node.part ?? '1';
    if (text && part === text.part) return;
    const disposition = node.disposition?.toLowerCase();
    const name = node.dispositionParameters?.filename ?? node.parameters?.name ?? '';
    const isBodyText =
      (type === 'text/plain' || type === 'text/html') && disposition !== 'attachment' && !name;
    if (isBodyText) return; // the other alternative of the body, not an attachment
    out.push({
      part,
      name: cutUtf8(name || `part-${part}`, FIELD_CAPS.attachmentName),
      type: cutUtf8(type, FIELD_CAPS.attachmentType),
      size: estimateDecodedSize(node.size ?? 0, node.encoding),
      ...(node.encoding ? { encoding: node.encoding } : {}),
      inline: disposition === 'inline' || (!!node.id && disposition !== 'attachment'),
      ...(node.id ? { contentId: node.id.replace(/^<|>$/g, '') } : {}),
    });
  };
  if (root) walk(root);
  return out;
}

function estimateDecodedSize(size: number, encoding: string | undefined): number {
  // Base64 bodies carry a CRLF every 76 characters: 78 octets on the wire per 57 decoded.
  return encoding?.toLowerCase() === 'base64' ? Math.floor((size * 57) / 78) : size;
}

const PREVIEW_FETCH_BYTES = 1024;

/**
 * Fetches compact headers of `range` (UIDs when `byUid`), newest first, with previews.
 * One FETCH for the envelopes, then one partial FETCH per distinct text part number.
 */
export async function fetchHeaders(
  client: ImapFlow,
  range: string | number[],
  byUid: boolean,
): Promise<MailHeader[]> {
  const messages = await fetchRows(
    client,
    range,
    { uid: true, flags: true, envelope: true, size: true, bodyStructure: true, internalDate: true },
    { uid: byUid },
  );
  const headers = new Map<number, MailHeader>();
  const previewParts = new Map<string, { uids: number[]; refs: Map<number, TextPartRef> }>();
  for (const msg of messages) {
    // A row without its UID (unreadable, and no UID near its start) cannot be listed by UID.
    if (!msg.uid) continue;
    headers.set(msg.uid, toHeader(msg));
    const text = findTextPart(readableStructure(msg));
    if (!text) continue;
    let group = previewParts.get(text.part);
    if (!group) previewParts.set(text.part, (group = { uids: [], refs: new Map() }));
    group.uids.push(msg.uid);
    group.refs.set(msg.uid, text);
  }
  for (const [part, group] of previewParts) {
    const parts = await fetchRows(
      client,
      group.uids,
      { uid: true, bodyParts: [{ key: part, start: 0, maxLength: PREVIEW_FETCH_BYTES }] },
      { uid: true },
    );
    for (const msg of parts) {
      const ref = group.refs.get(msg.uid);
      const raw = msg.bodyParts?.get(part) ?? msg.bodyParts?.values().next().value;
      const header = headers.get(msg.uid);
      if (!ref || !raw || !header) continue;
      // At most PREVIEW_FETCH_BYTES: decoded here, cheaper than the trip to a worker.
      header.preview = makePreview(
        renderText(raw.subarray(0, PREVIEW_FETCH_BYTES), {
          encoding: ref.encoding,
          charset: ref.charset,
          html: ref.type === 'text/html',
        }),
      );
    }
  }
  return [...headers.values()].sort((a, b) => b.uid - a.uid);
}

/** The message's structure when the gateway reads it: within MIME_LIMITS and not marked unreadable. */
export function readableStructure(msg: FetchedMessage): MessageStructureObject | undefined {
  if (msg.unreadable || !structureWithinLimits(msg.bodyStructure)) return undefined;
  return msg.bodyStructure;
}

export function toHeader(msg: FetchedMessage): MailHeader {
  const env = msg.envelope;
  const from = env?.from?.[0] ?? env?.sender?.[0];
  const date = env?.date ? new Date(env.date) : msg.internalDate ? new Date(msg.internalDate) : undefined;
  return {
    uid: msg.uid,
    from: capAddress(from),
    subject: capSubject(env?.subject),
    date: date && !Number.isNaN(date.getTime()) ? date.getTime() : 0,
    size: msg.size ?? 0,
    flags: deviceFlags(msg.flags),
    attachments: listAttachments(readableStructure(msg)).filter((a) => !a.inline).length,
    preview: '',
  };
}

/**
 * Bytes of header items one answer may carry. Each field is capped, but 500
 * headers with every field at its cap would still pass the 1 MiB a frame
 * may have: a page is cut to this, and the device asks for the rest.
 */
export const PAGE_BUDGET_BYTES = 512 * 1024;

/** An upper bound of a header's encoded size (strings as UTF-8, numbers and keys as a fixed allowance). */
export function headerBytes(h: MailHeader): number {
  let bytes = 96;
  for (const text of [h.subject, h.from.name, h.from.address, h.preview, ...h.flags]) {
    bytes += Buffer.byteLength(text, 'utf8') + 4;
  }
  return bytes;
}

/**
 * The headers of `items` (in their order) that fit PAGE_BUDGET_BYTES, kept
 * from the newest UIDs down or from the oldest up.
 */
export function fitPage(
  items: MailHeader[],
  keep: 'newest' | 'oldest',
  budget = PAGE_BUDGET_BYTES,
): MailHeader[] {
  const byUid = [...items].sort((a, b) => (keep === 'newest' ? b.uid - a.uid : a.uid - b.uid));
  const kept = new Set<number>();
  let used = 0;
  for (const h of byUid) {
    used += headerBytes(h);
    // The first header always goes: one capped header is far below any frame limit.
    if (used > budget && kept.size > 0) break;
    kept.add(h.uid);
  }
  return kept.size === items.length ? items : items.filter((h) => kept.has(h.uid));
}

/** Flags as a device gets them (field-caps.ts): \\Recent left out, sorted, capped. */
export function deviceFlags(flags: Set<string> | undefined): string[] {
  return capFlags(flags);
}

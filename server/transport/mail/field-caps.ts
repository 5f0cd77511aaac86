/**
 * The sizes header fields are cut to before they reach a device (issue #11):
 * a sender controls every one of them, and one mail with a 1 MiB Subject made
 * every `mail.sync` page holding it impossible to encode. Cut in UTF-8 bytes
 * (what a frame counts), never inside a character, with "…" where text was
 * dropped. The sizes are documented in METHODS.md and docs/handset-json.md.
 *
 * Pure functions of plain values: they run in the MIME workers too.
 */

export const FIELD_CAPS = {
  /** Subject, of a header and of mail.body. */
  subject: 512,
  /** A display name (From, To, Cc). */
  name: 128,
  /** An address: RFC 5321 limits a path to 256 octets with its brackets. */
  address: 254,
  /** Message-ID: a longer one (RFC 5322 allows 998 per line) is dropped, never cut (a cut id matches nothing). */
  messageId: 998,
  /** To and Cc of mail.body: the first this many addresses. */
  addresses: 100,
  /** Flags and keywords of a message; a longer keyword is dropped (a cut one would be another keyword). */
  flags: 32,
  flag: 128,
  /** Attachment file name and media type in mail.body. */
  attachmentName: 255,
  attachmentType: 127,
} as const;

const ELLIPSIS = '…';

/** `text` in at most `maxBytes` UTF-8 bytes: whole characters, "…" (3 bytes, counted) where it was cut. */
export function cutUtf8(text: string, maxBytes: number): string {
  // A UTF-16 unit is at most 3 UTF-8 bytes: shorter strings cannot be over.
  if (text.length * 3 <= maxBytes) return text;
  if (Buffer.byteLength(text, 'utf8') <= maxBytes) return text;
  const budget = maxBytes - 3;
  let bytes = 0;
  let end = 0;
  for (const ch of text) {
    const cp = ch.codePointAt(0) ?? 0;
    const b = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    if (bytes + b > budget) break;
    bytes += b;
    end += ch.length;
  }
  return text.slice(0, end) + ELLIPSIS;
}

// A type, not an interface: it must fit the protocol's Value (an index signature).
export type CappedAddress = { name: string; address: string };

export function capAddress(a: { name?: string; address?: string } | undefined): CappedAddress {
  return {
    name: cutUtf8(a?.name ?? '', FIELD_CAPS.name),
    address: cutUtf8(a?.address ?? '', FIELD_CAPS.address),
  };
}

/** The first FIELD_CAPS.addresses of them, each capped. */
export function capAddressList(
  list: readonly { name?: string; address?: string }[] | undefined,
): CappedAddress[] {
  return (list ?? []).slice(0, FIELD_CAPS.addresses).map(capAddress);
}

export function capSubject(subject: string | undefined): string {
  return cutUtf8(subject ?? '', FIELD_CAPS.subject);
}

export function capMessageId(id: string | undefined): string {
  const text = id ?? '';
  return Buffer.byteLength(text, 'utf8') <= FIELD_CAPS.messageId ? text : '';
}

/** Flags as a device gets them: sorted, \\Recent left out, over-long keywords dropped, at most FIELD_CAPS.flags. */
export function capFlags(flags: Iterable<string> | undefined): string[] {
  const out: string[] = [];
  for (const f of flags ?? []) {
    // \Recent is per IMAP session (ours), meaningless to a device and a source of false changes.
    if (f === '\\Recent' || Buffer.byteLength(f, 'utf8') > FIELD_CAPS.flag) continue;
    out.push(f);
  }
  out.sort();
  // System flags (\Seen, \Flagged, …) sort before keywords, so a cut keeps them.
  return out.length > FIELD_CAPS.flags ? out.slice(0, FIELD_CAPS.flags) : out;
}

/**
 * An imapflow envelope with every string capped, so a hostile one costs its
 * capped size from here on (the MIME workers send it back this small).
 */
export function capEnvelope<
  E extends {
    subject?: string;
    messageId?: string;
    inReplyTo?: string;
    from?: { name?: string; address?: string }[];
    sender?: { name?: string; address?: string }[];
    replyTo?: { name?: string; address?: string }[];
    to?: { name?: string; address?: string }[];
    cc?: { name?: string; address?: string }[];
    bcc?: { name?: string; address?: string }[];
  },
>(env: E): E {
  const out: E = { ...env };
  if (env.subject !== undefined) out.subject = capSubject(env.subject);
  if (env.messageId !== undefined) out.messageId = capMessageId(env.messageId);
  if (env.inReplyTo !== undefined) out.inReplyTo = capMessageId(env.inReplyTo);
  for (const key of ['from', 'sender', 'replyTo', 'to', 'cc', 'bcc'] as const) {
    const list = env[key];
    if (list !== undefined) out[key] = capAddressList(list);
  }
  return out;
}

/**
 * The sender and subject a wake-up may carry where the device's service
 * profile allows it (policies.wakeupPreview, issue 14). They come from a mail
 * sender's or chat peer's bytes, go to a third-party push service and end on
 * a lock screen: untrusted text, so it is bounded and stripped of what could
 * break or spoof the notification (control characters, bidi overrides, line
 * breaks, lone surrogates) before it leaves this module. Pure, no I/O.
 */
import type { Value } from '../../../device-protocol/messages.ts';
import type { WakeupPreview } from '../../store/device-profile.ts';

/** What a wake-up may show of the newest item it tells of. */
export interface WakePreview {
  /** The mail From's display name (else its address), or the chat peer's bare JID. */
  from?: string;
  /** Mail only: the subject. */
  subject?: string;
}

/** Code points kept of each field: a notification line, well inside every push service's 4 KB payload. */
export const PREVIEW_LIMITS = { from: 64, subject: 120 } as const;

// C0 and C1 controls, DEL; the bidi embeddings, overrides and isolates (a sender could turn
// "moc.knab" into "bank.com" on the screen); zero-width and BOM; line and paragraph separators.
// biome-ignore lint/suspicious/noControlCharactersInRegex: stripping them is the point
const STRIP = /[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2028\u2029\u2066-\u2069\ufeff]+/g;
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/** `text` made safe for a lock screen and cut to `max` code points (an ellipsis marks the cut); '' when nothing is left. */
export function previewText(text: string, max: number): string {
  const clean = text.replace(LONE_SURROGATE, '\ufffd').replace(STRIP, ' ').replace(/\s+/g, ' ').trim();
  const points = Array.from(clean);
  if (points.length <= max) return clean;
  return `${points
    .slice(0, max - 1)
    .join('')
    .trimEnd()}…`;
}

const str = (v: unknown) => (typeof v === 'string' ? v : undefined);

/** A bare JID: what a chat peer is named by (the resource says nothing to the reader). */
const bareJid = (jid: string) => jid.split('/')[0] ?? jid;

function bounded(from: string | undefined, subject: string | undefined): WakePreview | undefined {
  const out: WakePreview = {};
  const f = from === undefined ? '' : previewText(from, PREVIEW_LIMITS.from);
  const s = subject === undefined ? '' : previewText(subject, PREVIEW_LIMITS.subject);
  if (f) out.from = f;
  if (s) out.subject = s;
  return f || s ? out : undefined;
}

/** A mail header's sender (display name, else address) and subject; undefined when it has neither. */
export function mailPreview(header: unknown): WakePreview | undefined {
  if (header === null || typeof header !== 'object') return undefined;
  const h = header as { from?: unknown; subject?: unknown };
  const from = h.from !== null && typeof h.from === 'object' ? (h.from as Record<string, unknown>) : {};
  const name = str(from.name)?.trim();
  return bounded(name ? name : str(from.address), str(h.subject));
}

/**
 * The preview of a pushed event the device could not be given (wake-feed.ts):
 * `mail.new` {header}, `im.message` {from, direction} or its compact form
 * `im.m` [account, from, …, flags at 7] (SPEC.md §9). A chat message the user
 * sent from another client (direction out) names no sender.
 */
export function eventPreview(name: string, body: Value | undefined): WakePreview | undefined {
  if (name === 'mail.new' && body !== null && typeof body === 'object' && !Array.isArray(body)) {
    return mailPreview((body as Record<string, unknown>).header);
  }
  if (name === 'im.message' && body !== null && typeof body === 'object' && !Array.isArray(body)) {
    const b = body as Record<string, unknown>;
    const from = str(b.from);
    return b.direction === 'out' || from === undefined ? undefined : bounded(bareJid(from), undefined);
  }
  if (name === 'im.m' && Array.isArray(body)) {
    const from = str(body[1]);
    const outgoing = typeof body[7] === 'number' && (body[7] & 1) === 1;
    return outgoing || from === undefined ? undefined : bounded(bareJid(from), undefined);
  }
  return undefined;
}

/** What of `preview` the profile's policy lets a wake-up carry (absent policy: nothing). */
export function allowedPreview(
  preview: WakePreview | undefined,
  policy: WakeupPreview | undefined,
): WakePreview | undefined {
  if (!preview || policy === undefined || policy === 'none') return undefined;
  if (policy === 'sender_subject') return preview;
  return preview.from === undefined ? undefined : { from: preview.from };
}

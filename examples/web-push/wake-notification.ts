/**
 * What the page and the service worker share: the wake-up payload the gateway
 * sends (device-protocol/SPEC.md §5 "Wake-ups"), read without trusting it,
 * and the notification it becomes. No DOM and no worker globals, so that both
 * sides compile it.
 */

/** The decrypted Web Push payload of an mmgw wake-up. */
export interface WakePayload {
  kind: 'mail' | 'chat';
  /** Mail and chat messages missed since the device last had a session. */
  count: number;
  mail: number;
  chat: number;
  /** The gateway's placeholder text ("3 new messages"). */
  text: string;
  /** The newest item's sender: only where the device's service profile allows it. */
  from?: string;
  /** The newest mail's subject: likewise. */
  subject?: string;
}

/** The `type` of the message the service worker posts to the app's windows on every wake-up. */
export const WAKE_MESSAGE = 'mmgw.wake';

/** Notifications replace each other: one per app, however many wake-ups came. */
export const WAKE_TAG = 'mmgw-wake';

const count = (v: unknown) => (Number.isInteger(v) && (v as number) >= 0 ? (v as number) : undefined);
const text = (v: unknown, max: number) =>
  typeof v === 'string' && v.length > 0 ? v.slice(0, max) : undefined;

/** The payload, or undefined when it is not a wake-up (another sender, a damaged push). */
export function readWake(data: unknown): WakePayload | undefined {
  if (data === null || typeof data !== 'object') return undefined;
  const d = data as Record<string, unknown>;
  const [total, mail, chat] = [count(d.count), count(d.mail), count(d.chat)];
  if ((d.kind !== 'mail' && d.kind !== 'chat') || total === undefined || mail === undefined) return undefined;
  if (chat === undefined) return undefined;
  const wake: WakePayload = { kind: d.kind, count: total, mail, chat, text: text(d.text, 200) ?? '' };
  const from = text(d.from, 200);
  const subject = text(d.subject, 200);
  if (from !== undefined) wake.from = from;
  if (subject !== undefined) wake.subject = subject;
  return wake;
}

/** Title and options of the notification a wake-up shows (a push that is no wake-up: a generic one). */
export function wakeNotification(wake: WakePayload | undefined): {
  title: string;
  options: { body: string; tag: string; data: { kind: string; count: number } };
} {
  const kind = wake?.kind ?? 'mail';
  const title = wake?.from ?? (kind === 'chat' ? 'New chat message' : 'New mail');
  const body = wake?.subject ?? (wake?.text || 'Open the app to see what is new');
  return { title, options: { body, tag: WAKE_TAG, data: { kind, count: wake?.count ?? 0 } } };
}

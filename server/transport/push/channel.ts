/**
 * What every wake-up channel kind implements (Web Push, FCM, APNs): one try
 * at delivering one wake-up to one registration, answered sent, gone (the
 * service says the registration will never work again: the caller removes
 * it) or failed, with whether another try may help and how long the service
 * asked to wait. sendWithRetries() turns tries into a send: retryable
 * failures (429, 5xx, the network) are tried again after Retry-After, else a
 * doubling backoff, both bounded; anything else ends at once.
 */
import type { WakeKind, WakeTally } from './coalescer.ts';
import type { WakePreview } from './preview.ts';

/** One wake-up, before any channel's encoding. */
export interface WakeMessage {
  tally: WakeTally;
  /** The kind of what waits that sets the delivery class: chat when any chat waits. */
  kind: WakeKind;
  /** Seconds a push service keeps it for a device that is offline. */
  ttl: number;
  /** Whether it should wake a phone in Doze / low-power mode now (high) or at its next window. */
  urgency: 'normal' | 'high';
  /** The collapse key: a push service keeps only the newest wake-up of one key. */
  collapseKey: string;
  /** The newest item's sender and subject, as far as the device's service profile allows (preview.ts); absent: none. */
  preview?: WakePreview | undefined;
}

export type Attempt =
  | { result: 'sent' }
  /** `code`: what the device log records (`http_410`, `fcm_unregistered`, `apns_BadDeviceToken`). */
  | { result: 'gone'; code: string; why: string }
  | { result: 'failed'; why: string; retry: boolean; retryAfter?: string | undefined };

export type SendResult = Exclude<Attempt, { result: 'failed' }> | { result: 'failed'; why: string };

export interface ChannelSender<R> {
  /** One try; throws only for a network failure (tried again) or the policy's refusal (not). */
  attempt(record: R, message: WakeMessage): Promise<Attempt>;
  close?(): Promise<void>;
}

export interface RetryOptions {
  /** Tries in all, the first included. Default 3. */
  attempts?: number;
  /** The longest wait between two tries, whatever Retry-After says. Default 60 s. */
  maxRetryWaitMs?: number;
  sleep?: (ms: number) => Promise<void>;
  now?: () => number;
}

/** How long Retry-After asks to wait, in ms (delta-seconds or an HTTP date); undefined when absent or unreadable. */
export function retryAfterMs(header: string | undefined, now: number): number | undefined {
  if (header === undefined) return undefined;
  const text = header.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  // An HTTP date names its day and month; Date.parse would read "-5" as a year.
  if (!/^[A-Za-z]{3}, /.test(text)) return undefined;
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

const sleepFor = (ms: number) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(resolve, ms);
    t.unref?.();
  });

/** Tries `sender` until it is sent, gone, failed for good, or out of tries. */
export async function sendWithRetries<R>(
  sender: ChannelSender<R>,
  record: R,
  message: WakeMessage,
  opts: RetryOptions = {},
): Promise<SendResult> {
  const attempts = opts.attempts ?? 3;
  const maxWait = opts.maxRetryWaitMs ?? 60_000;
  const sleep = opts.sleep ?? sleepFor;
  const now = opts.now ?? Date.now;
  let why = 'no attempt';
  for (let attempt = 1; attempt <= attempts; attempt++) {
    let answer: Attempt;
    try {
      answer = await sender.attempt(record, message);
    } catch (err) {
      // The policy's refusal is final; a network failure is worth another try.
      if ((err as { code?: string }).code === 'policy.destination_not_allowed') {
        return { result: 'failed', why: 'policy' };
      }
      answer = { result: 'failed', why: `network: ${(err as Error).message}`, retry: true };
    }
    if (answer.result !== 'failed') return answer;
    why = answer.why;
    if (!answer.retry) break;
    if (attempt < attempts) {
      const asked = retryAfterMs(answer.retryAfter, now());
      await sleep(Math.min(maxWait, asked ?? 1000 * 2 ** (attempt - 1)));
    }
  }
  return { result: 'failed', why };
}

/** The placeholder text of a wake-up: counts only (privacy by default). */
export function wakeText(tally: WakeTally): string {
  const count = tally.mail + tally.chat;
  return count === 1 ? 'New message' : `${count} new messages`;
}

/**
 * The wake-up's fields, as every channel but SMS carries them (SPEC.md §5
 * "Wake-ups"): `from` and `subject` only where the message has a preview.
 */
export function wakeFields(message: Pick<WakeMessage, 'tally' | 'preview'>) {
  const { tally, preview } = message;
  return {
    kind: tally.kind,
    count: tally.mail + tally.chat,
    mail: tally.mail,
    chat: tally.chat,
    text: wakeText(tally),
    ...(preview?.from === undefined ? {} : { from: preview.from }),
    ...(preview?.subject === undefined ? {} : { subject: preview.subject }),
  };
}

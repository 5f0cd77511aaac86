/**
 * Sends one Web Push message (RFC 8030) to one registration: the payload
 * encrypted for the subscription (RFC 8291, aes128gcm) and signed with the
 * gateway's VAPID key (RFC 8292) by the `web-push` package, which only
 * builds the request here: the gateway sends it itself, to the address its
 * outbound policy checked (pinned: DNS cannot switch it between the check
 * and the connection), as the alarm webhook does.
 *
 * 404 and 410 mean the subscription is gone (the caller removes it); 429 and
 * 5xx are tried again after Retry-After (seconds or an HTTP date), else a
 * doubling backoff, both bounded; anything else fails at once.
 */
import webpush from 'web-push';
import type { DestinationPolicy } from '../../net/destination-policy.ts';
import { pinnedRequest } from '../../net/pinned-request.ts';
import type { WebPushRegistration } from './registrations.ts';

export interface WebPushMessage {
  payload: string;
  /** Seconds the push service keeps it for a device that is offline. */
  ttl: number;
  urgency: 'very-low' | 'low' | 'normal' | 'high';
  /** The collapse key: a push service keeps only the newest message of one topic. */
  topic: string;
}

export type SendResult =
  | { result: 'sent' }
  | { result: 'gone'; status: number }
  | { result: 'failed'; why: string };

export interface WebPushSenderOptions {
  policy: DestinationPolicy;
  vapid: { subject: string; publicKey: string; privateKey: string };
  /** Tries in all, the first included. Default 3. */
  attempts?: number;
  /** The longest wait between two tries, whatever Retry-After says. Default 60 s. */
  maxRetryWaitMs?: number;
  /** One request's deadline. Default 10 s. */
  timeoutMs?: number;
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

interface Answer {
  status: number;
  retryAfter: string | undefined;
}

export class WebPushSender {
  readonly #opts: WebPushSenderOptions;

  constructor(opts: WebPushSenderOptions) {
    this.#opts = opts;
  }

  async send(reg: WebPushRegistration, message: WebPushMessage): Promise<SendResult> {
    const attempts = this.#opts.attempts ?? 3;
    const maxWait = this.#opts.maxRetryWaitMs ?? 60_000;
    const sleep = this.#opts.sleep ?? sleepFor;
    const now = this.#opts.now ?? Date.now;
    let why = 'no attempt';
    for (let attempt = 1; attempt <= attempts; attempt++) {
      let answer: Answer;
      try {
        answer = await this.#post(reg, message);
      } catch (err) {
        // The policy's refusal is final; a network failure is worth another try.
        if ((err as { code?: string }).code === 'policy.destination_not_allowed') {
          return { result: 'failed', why: 'policy' };
        }
        why = `network: ${(err as Error).message}`;
        if (attempt < attempts) await sleep(Math.min(maxWait, 1000 * 2 ** (attempt - 1)));
        continue;
      }
      const { status } = answer;
      if (status >= 200 && status < 300) return { result: 'sent' };
      if (status === 404 || status === 410) return { result: 'gone', status };
      why = `HTTP ${status}`;
      if (status !== 429 && status < 500) return { result: 'failed', why };
      if (attempt < attempts) {
        const asked = retryAfterMs(answer.retryAfter, now());
        await sleep(Math.min(maxWait, asked ?? 1000 * 2 ** (attempt - 1)));
      }
    }
    return { result: 'failed', why };
  }

  async #post(reg: WebPushRegistration, message: WebPushMessage): Promise<Answer> {
    const { vapid, policy } = this.#opts;
    const details = webpush.generateRequestDetails(
      { endpoint: reg.endpoint, keys: { p256dh: reg.p256dh, auth: reg.auth } },
      message.payload,
      {
        vapidDetails: vapid,
        TTL: message.ttl,
        urgency: message.urgency,
        topic: message.topic,
        contentEncoding: 'aes128gcm',
      },
    );
    const url = new URL(details.endpoint);
    const port = url.port === '' ? 443 : Number(url.port);
    const target = await policy.check('push', url.hostname, port);
    const timeoutMs = this.#opts.timeoutMs ?? 10_000;
    const body = details.body as Buffer | null;
    // The push service's body is neither read nor logged: the status and Retry-After say it all.
    const { status, headers } = await pinnedRequest(
      url,
      { ...target, port },
      {
        method: details.method,
        headers: details.headers,
        ...(body ? { body } : {}),
        timeoutMs,
        timedOut: 'push service timed out',
      },
    );
    const header = headers['retry-after'];
    return { status, retryAfter: Array.isArray(header) ? header[0] : header };
  }
}

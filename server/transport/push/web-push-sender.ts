/**
 * The Web Push channel: one message (RFC 8030) to one registration, the
 * payload encrypted for the subscription (RFC 8291, aes128gcm) and signed
 * with the gateway's VAPID key (RFC 8292) by the `web-push` package, which
 * only builds the request here: the gateway sends it itself, to the address
 * its outbound policy checked (pinned: DNS cannot switch it between the check
 * and the connection), as the alarm webhook does.
 *
 * 404 and 410 mean the subscription is gone (the caller removes it); 429 and
 * 5xx may be tried again (channel.ts sendWithRetries, honouring Retry-After);
 * anything else fails at once.
 */
import webpush from 'web-push';
import type { DestinationPolicy } from '../../net/destination-policy.ts';
import { pinnedRequest } from '../../net/pinned-request.ts';
import { type Attempt, type ChannelSender, type WakeMessage, wakeFields } from './channel.ts';
import type { WebPushRegistration } from './registrations.ts';

export interface WebPushSenderOptions {
  policy: DestinationPolicy;
  vapid: { subject: string; publicKey: string; privateKey: string };
  /** One request's deadline. Default 10 s. */
  timeoutMs?: number;
}

/** HTTP statuses worth another try: the service is busy or failing, not refusing this message. */
export const retryable = (status: number) => status === 429 || status >= 500;

export class WebPushSender implements ChannelSender<WebPushRegistration> {
  readonly #opts: WebPushSenderOptions;

  constructor(opts: WebPushSenderOptions) {
    this.#opts = opts;
  }

  async attempt(reg: WebPushRegistration, message: WakeMessage): Promise<Attempt> {
    const { vapid, policy } = this.#opts;
    const details = webpush.generateRequestDetails(
      { endpoint: reg.endpoint, keys: { p256dh: reg.p256dh, auth: reg.auth } },
      JSON.stringify(wakeFields(message.tally)),
      {
        vapidDetails: vapid,
        TTL: message.ttl,
        urgency: message.urgency,
        topic: message.collapseKey,
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
    if (status >= 200 && status < 300) return { result: 'sent' };
    if (status === 404 || status === 410) {
      return { result: 'gone', code: `http_${status}`, why: `the push service answered ${status}` };
    }
    const header = headers['retry-after'];
    return {
      result: 'failed',
      why: `HTTP ${status}`,
      retry: retryable(status),
      retryAfter: Array.isArray(header) ? header[0] : header,
    };
  }
}

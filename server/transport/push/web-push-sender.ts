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
 *
 * Cost per message, measured by `npm run bench:push`: the ES256 signature of
 * the VAPID JWT took 1 ms of the 1.4 ms web-push spent per message, and every
 * wake-up of a burst opened its own TLS connection at once. So the signed
 * header is made once per push service origin and reused for an hour (RFC
 * 8292 §2: a JWT is good until its `exp`, 12 h here), at most `maxInFlight`
 * messages are under way (the others wait before they are encrypted, and
 * before their deadline starts), and their connections are kept alive.
 */
import { Agent } from 'node:https';
import webpush from 'web-push';
import type { DestinationPolicy } from '../../net/destination-policy.ts';
import { pinnedRequest } from '../../net/pinned-request.ts';
import { type Attempt, type ChannelSender, type WakeMessage, wakeFields } from './channel.ts';
import type { WebPushRegistration } from './registrations.ts';
import { Slots } from './slots.ts';

export interface WebPushSenderOptions {
  policy: DestinationPolicy;
  vapid: { subject: string; publicKey: string; privateKey: string };
  /** One request's deadline. Default 10 s. */
  timeoutMs?: number;
  /**
   * Messages under way at once, over all push services. Default 256: enough
   * for 1,000 wake-ups a second to a push service 250 ms away, few enough
   * that a burst does not open a connection per wake-up.
   */
  maxInFlight?: number;
  now?: () => number;
}

const DEFAULT_IN_FLIGHT = 256;

/** How long one signed VAPID header is reused: well within the 12 h of its `exp`. */
const VAPID_REUSE_MS = 60 * 60_000;

/** HTTP statuses worth another try: the service is busy or failing, not refusing this message. */
export const retryable = (status: number) => status === 429 || status >= 500;

export class WebPushSender implements ChannelSender<WebPushRegistration> {
  readonly #opts: WebPushSenderOptions;
  /** The signed VAPID header per push service origin (the JWT's `aud`), and until when it is used. */
  readonly #vapidHeaders = new Map<string, { authorization: string; until: number }>();
  readonly #agent: Agent;
  readonly #slots: Slots;

  constructor(opts: WebPushSenderOptions) {
    this.#opts = opts;
    this.#slots = new Slots(opts.maxInFlight ?? DEFAULT_IN_FLIGHT);
    this.#agent = new Agent({ keepAlive: true, maxSockets: opts.maxInFlight ?? DEFAULT_IN_FLIGHT });
  }

  /** Closes the kept-alive connections. */
  async close(): Promise<void> {
    this.#agent.destroy();
  }

  attempt(reg: WebPushRegistration, message: WakeMessage): Promise<Attempt> {
    return this.#slots.run(() => this.#attemptNow(reg, message));
  }

  #vapidHeader(origin: string): string {
    const now = (this.#opts.now ?? Date.now)();
    const held = this.#vapidHeaders.get(origin);
    if (held !== undefined && held.until > now) return held.authorization;
    const { subject, publicKey, privateKey } = this.#opts.vapid;
    const made = webpush.getVapidHeaders(origin, subject, publicKey, privateKey, 'aes128gcm');
    const authorization = String(made.Authorization);
    // A handset chooses its endpoint: the map is bounded like the set of push services it names.
    if (this.#vapidHeaders.size >= 1000) this.#vapidHeaders.clear();
    this.#vapidHeaders.set(origin, { authorization, until: now + VAPID_REUSE_MS });
    return authorization;
  }

  async #attemptNow(reg: WebPushRegistration, message: WakeMessage): Promise<Attempt> {
    const { policy } = this.#opts;
    const details = webpush.generateRequestDetails(
      { endpoint: reg.endpoint, keys: { p256dh: reg.p256dh, auth: reg.auth } },
      JSON.stringify(wakeFields(message)),
      {
        TTL: message.ttl,
        urgency: message.urgency,
        topic: message.collapseKey,
        contentEncoding: 'aes128gcm',
      },
    );
    const url = new URL(details.endpoint);
    details.headers.Authorization = this.#vapidHeader(url.origin);
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
        ...(url.protocol === 'https:' ? { agent: this.#agent } : {}),
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

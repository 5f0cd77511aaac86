/**
 * The FCM channel: Firebase Cloud Messaging's HTTP v1 API. HTTP/1.1 through
 * the node's pinned request (server/net/pinned-request.ts) rather than
 * HTTP/2: FCM v1 accepts both, a device gets at most one wake-up per
 * interval, and so every request to Google goes through the same outbound
 * policy check and address pinning as Web Push and the alarm webhook
 * (keep-alive of node:https reuses the connection between wake-ups).
 *
 * A burst is bounded like Web Push's: at most `maxInFlight` messages under
 * way (the others wait their turn before their deadline starts), over one
 * connection pool of at most as many connections; the token fetch is one of
 * them.
 *
 * Auth is the OAuth2 service-account flow (RFC 7523): a JWT signed RS256 with
 * the account's key is posted to its token_uri for an access token, kept
 * until a minute before it expires, and fetched anew once when FCM answers
 * 401. The message is data-only ({kind, count, mail, chat, text}, strings as
 * FCM wants) with the android priority, TTL and collapse key of the wake-up.
 *
 * Answers: 404 UNREGISTERED, or 400 INVALID_ARGUMENT about message.token,
 * mean the token will never work again (gone); 429 and 5xx may be tried
 * again after Retry-After; anything else fails at once.
 */
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import jwt from 'jsonwebtoken';
import { z } from 'zod';
import type { DestinationPolicy } from '../../net/destination-policy.ts';
import { pinnedRequest } from '../../net/pinned-request.ts';
import { type Attempt, type ChannelSender, type WakeMessage, wakeFields } from './channel.ts';
import type { FcmRegistration } from './registrations.ts';
import type { ServiceAccount } from './settings.ts';
import { DEFAULT_IN_FLIGHT, Slots } from './slots.ts';
import { retryable } from './web-push-sender.ts';

export const FCM_ORIGIN = 'https://fcm.googleapis.com';
const SCOPE = 'https://www.googleapis.com/auth/firebase.messaging';
/** Answers read at most this far: an error's JSON is small; more is not FCM. */
const MAX_ANSWER = 64 * 1024;

export interface FcmSenderOptions {
  account: ServiceAccount;
  policy: DestinationPolicy;
  /** The API origin. Default https://fcm.googleapis.com. */
  endpoint?: string;
  /** One request's deadline. Default 10 s. */
  timeoutMs?: number;
  /** Trust anchors instead of the system's (tests). */
  ca?: string;
  /** Messages under way at once, and connections open (default 256). */
  maxInFlight?: number;
  now?: () => number;
}

const tokenAnswer = z.object({
  access_token: z.string().min(1).max(4096),
  expires_in: z.number().int().positive().max(86_400),
});

const errorAnswer = z.object({
  error: z.object({
    status: z.string().max(64).optional(),
    message: z.string().max(1024).optional(),
    details: z
      .array(
        z.looseObject({
          errorCode: z.string().max(64).optional(),
          fieldViolations: z.array(z.looseObject({ field: z.string().max(256).optional() })).optional(),
        }),
      )
      .max(16)
      .optional(),
  }),
});

/** What FCM's error answer says: its status and errorCode, and whether it is about the token. */
export function fcmError(body: Buffer | undefined): { code: string; aboutToken: boolean } {
  let parsed: ReturnType<typeof errorAnswer.safeParse> | undefined;
  try {
    parsed = errorAnswer.safeParse(JSON.parse(body?.toString('utf8') ?? ''));
  } catch {
    parsed = undefined;
  }
  if (!parsed?.success) return { code: 'unreadable', aboutToken: false };
  const { status, details = [] } = parsed.data.error;
  const code = details.find((d) => d.errorCode !== undefined)?.errorCode ?? status ?? 'unknown';
  const aboutToken = details.some((d) => d.fieldViolations?.some((f) => f.field === 'message.token'));
  return { code, aboutToken };
}

interface AccessToken {
  token: string;
  /** Date.now() after which it is fetched anew. */
  until: number;
}

export class FcmSender implements ChannelSender<FcmRegistration> {
  readonly #opts: FcmSenderOptions;
  readonly #now: () => number;
  #access: Promise<AccessToken> | undefined;
  readonly #slots: Slots;
  /** One pool per scheme (an http: origin is a test's), made on first use. */
  readonly #agents = new Map<string, HttpAgent>();

  constructor(opts: FcmSenderOptions) {
    this.#opts = opts;
    this.#now = opts.now ?? Date.now;
    this.#slots = new Slots(opts.maxInFlight ?? DEFAULT_IN_FLIGHT);
  }

  attempt(reg: FcmRegistration, message: WakeMessage): Promise<Attempt> {
    return this.#slots.run(() => this.#attemptNow(reg, message));
  }

  /** Messages under way, and waiting for a slot (tests, metrics). */
  get inFlight(): { busy: number; waiting: number } {
    return { busy: this.#slots.busy, waiting: this.#slots.waiting };
  }

  /** Closes the kept-alive connections. */
  async close(): Promise<void> {
    for (const agent of this.#agents.values()) agent.destroy();
    this.#agents.clear();
  }

  async #attemptNow(reg: FcmRegistration, message: WakeMessage): Promise<Attempt> {
    let answer = await this.#send(reg, message, await this.#accessToken());
    if (answer.status === 401) {
      // The token expired early or was revoked: one new one, one more try.
      this.#access = undefined;
      answer = await this.#send(reg, message, await this.#accessToken());
    }
    const { status, headers, body } = answer;
    if (status >= 200 && status < 300) return { result: 'sent' };
    const error = fcmError(body);
    if ((status === 404 && error.code === 'UNREGISTERED') || (status === 400 && error.aboutToken)) {
      return {
        result: 'gone',
        code: `fcm_${error.code.toLowerCase()}`,
        why: `FCM answered ${status} ${error.code}`,
      };
    }
    const header = headers['retry-after'];
    return {
      result: 'failed',
      why: `FCM answered ${status} ${error.code}`,
      retry: retryable(status),
      retryAfter: Array.isArray(header) ? header[0] : header,
    };
  }

  #send(reg: FcmRegistration, message: WakeMessage, access: AccessToken) {
    const { project_id } = this.#opts.account;
    const url = new URL(`/v1/projects/${project_id}/messages:send`, this.#opts.endpoint ?? FCM_ORIGIN);
    const data = Object.fromEntries(Object.entries(wakeFields(message)).map(([k, v]) => [k, String(v)]));
    const body = JSON.stringify({
      message: {
        token: reg.token,
        data,
        android: {
          priority: message.urgency === 'high' ? 'HIGH' : 'NORMAL',
          ttl: `${message.ttl}s`,
          collapse_key: message.collapseKey,
        },
      },
    });
    return this.#post(
      url,
      { authorization: `Bearer ${access.token}`, 'content-type': 'application/json' },
      body,
    );
  }

  /** The cached access token, or a new one (one fetch at a time; a failed fetch is not kept). */
  async #accessToken(): Promise<AccessToken> {
    const cached = this.#access;
    if (cached) {
      const access = await cached.catch(() => undefined);
      if (access && access.until > this.#now()) return access;
      if (this.#access === cached) this.#access = undefined;
      else return this.#accessToken();
    }
    const fetching = this.#fetchAccessToken();
    this.#access = fetching;
    fetching.catch(() => {
      if (this.#access === fetching) this.#access = undefined;
    });
    return fetching;
  }

  async #fetchAccessToken(): Promise<AccessToken> {
    const { account } = this.#opts;
    const iat = Math.floor(this.#now() / 1000);
    const assertion = jwt.sign(
      { iss: account.client_email, scope: SCOPE, aud: account.token_uri, iat, exp: iat + 3600 },
      account.private_key,
      {
        algorithm: 'RS256',
        ...(account.private_key_id ? { keyid: account.private_key_id } : {}),
      },
    );
    const form = new URLSearchParams({
      grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer',
      assertion,
    });
    const { status, body } = await this.#post(
      new URL(account.token_uri),
      { 'content-type': 'application/x-www-form-urlencoded' },
      form.toString(),
    );
    let parsed: ReturnType<typeof tokenAnswer.safeParse> | undefined;
    try {
      parsed = tokenAnswer.safeParse(JSON.parse(body?.toString('utf8') ?? ''));
    } catch {
      parsed = undefined;
    }
    // Thrown: the send counts as a network failure, tried again (the token endpoint may be back).
    if (status !== 200 || !parsed?.success) throw new Error(`the OAuth2 token endpoint answered ${status}`);
    const { access_token, expires_in } = parsed.data;
    return { token: access_token, until: this.#now() + Math.max(0, expires_in - 60) * 1000 };
  }

  async #post(url: URL, headers: Record<string, string>, body: string) {
    const port = url.port === '' ? 443 : Number(url.port);
    const target = await this.#opts.policy.check('push', url.hostname, port);
    return pinnedRequest(
      url,
      { ...target, port },
      {
        method: 'POST',
        headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) },
        body,
        timeoutMs: this.#opts.timeoutMs ?? 10_000,
        timedOut: 'FCM timed out',
        readBody: MAX_ANSWER,
        agent: this.#agent(url.protocol),
        ...(this.#opts.ca ? { ca: this.#opts.ca } : {}),
      },
    );
  }

  #agent(protocol: string): HttpAgent {
    let agent = this.#agents.get(protocol);
    if (!agent) {
      const o = { keepAlive: true, maxSockets: this.#opts.maxInFlight ?? DEFAULT_IN_FLIGHT };
      agent = protocol === 'https:' ? new HttpsAgent(o) : new HttpAgent(o);
      this.#agents.set(protocol, agent);
    }
    return agent;
  }
}

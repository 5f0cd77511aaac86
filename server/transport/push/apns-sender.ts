/**
 * The APNs channel: Apple's provider API over HTTP/2 (node:http2), with
 * token auth: an ES256 JWT (iss the team id, kid the key id, iat) signed with
 * the .p8 key, reused for up to 50 minutes (APNs refuses one older than an
 * hour and one renewed more often than every 20) and renewed at once on 403
 * ExpiredProviderToken.
 *
 * One HTTP/2 session per origin, opened on the first wake-up to the address
 * the outbound policy checked (pinned, TLS name the origin's host), and
 * opened anew when the server sends GOAWAY or the connection ends. At most
 * `maxInFlight` streams are open on it at once (a burst waits its turn
 * rather than opening thousands, beyond what the server's
 * SETTINGS_MAX_CONCURRENT_STREAMS takes).
 *
 * A wake-up is POST /3/device/<token> with apns-topic (the app's bundle id),
 * apns-push-type background (aps content-available, priority 5: what Apple
 * allows for a silent push) or alert (the placeholder text, or the sender as
 * title and the subject where the service profile allows a preview; priority
 * 10 for chat), apns-expiration (now + TTL) and apns-collapse-id. Answers: 410
 * Unregistered and 400 BadDeviceToken mean the token is gone; 429 and 5xx may
 * be tried again; anything else fails at once.
 */
import {
  type ClientHttp2Session,
  connect as http2Connect,
  constants,
  type IncomingHttpHeaders,
} from 'node:http2';
import { isIP } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import jwt from 'jsonwebtoken';
import { z } from 'zod';
import type { DestinationPolicy } from '../../net/destination-policy.ts';
import { type Attempt, type ChannelSender, type WakeMessage, wakeFields } from './channel.ts';
import type { ApnsRegistration } from './registrations.ts';
import { DEFAULT_IN_FLIGHT, Slots } from './slots.ts';
import { retryable } from './web-push-sender.ts';

/** A provider token is reused this long (Apple: at most 60 min, renewed no more than every 20). */
export const APNS_TOKEN_REUSE_MS = 50 * 60_000;
const MAX_ANSWER = 16 * 1024;

export interface ApnsSenderOptions {
  keyId: string;
  teamId: string;
  /** The .p8 key's PEM text. */
  key: string;
  /** The origin, e.g. https://api.push.apple.com. */
  origin: string;
  pushType?: 'background' | 'alert';
  policy: DestinationPolicy;
  /** One request's deadline. Default 10 s. */
  timeoutMs?: number;
  /** Trust anchors instead of the system's (tests). */
  ca?: string;
  /** Streams under way at once (default 256). */
  maxInFlight?: number;
  now?: () => number;
}

const reasonAnswer = z.object({ reason: z.string().max(64) });

function reasonOf(body: Buffer): string {
  try {
    const parsed = reasonAnswer.safeParse(JSON.parse(body.toString('utf8')));
    return parsed.success ? parsed.data.reason : 'unreadable';
  } catch {
    return 'unreadable';
  }
}

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export class ApnsSender implements ChannelSender<ApnsRegistration> {
  readonly #opts: ApnsSenderOptions;
  readonly #now: () => number;
  readonly #origin: URL;
  #session: Promise<ClientHttp2Session> | undefined;
  #token: { jwt: string; at: number } | undefined;
  readonly #slots: Slots;

  constructor(opts: ApnsSenderOptions) {
    this.#opts = opts;
    this.#now = opts.now ?? Date.now;
    this.#origin = new URL(opts.origin);
    this.#slots = new Slots(opts.maxInFlight ?? DEFAULT_IN_FLIGHT);
  }

  attempt(reg: ApnsRegistration, message: WakeMessage): Promise<Attempt> {
    return this.#slots.run(() => this.#attemptNow(reg, message));
  }

  /** Streams under way, and waiting for a slot (tests, metrics). */
  get inFlight(): { busy: number; waiting: number } {
    return { busy: this.#slots.busy, waiting: this.#slots.waiting };
  }

  async #attemptNow(reg: ApnsRegistration, message: WakeMessage): Promise<Attempt> {
    let answer = await this.#send(reg, message);
    let reason = answer.status === 200 ? '' : reasonOf(answer.body);
    if (answer.status === 403 && reason === 'ExpiredProviderToken') {
      this.#token = undefined;
      answer = await this.#send(reg, message);
      reason = answer.status === 200 ? '' : reasonOf(answer.body);
    }
    const { status } = answer;
    if (status === 200) return { result: 'sent' };
    if ((status === 410 && reason === 'Unregistered') || (status === 400 && reason === 'BadDeviceToken')) {
      return { result: 'gone', code: `apns_${reason}`, why: `APNs answered ${status} ${reason}` };
    }
    const header = answer.headers['retry-after'];
    return {
      result: 'failed',
      why: `APNs answered ${status} ${reason}`,
      retry: retryable(status),
      retryAfter: Array.isArray(header) ? header[0] : header,
    };
  }

  async close(): Promise<void> {
    const session = this.#session;
    this.#session = undefined;
    const s = await session?.catch(() => undefined);
    if (s && !s.destroyed) await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  /** The provider token: the one made within the last 50 minutes, else a new one. */
  #providerToken(): string {
    const now = this.#now();
    if (this.#token && now - this.#token.at < APNS_TOKEN_REUSE_MS) return this.#token.jwt;
    const { key, keyId, teamId } = this.#opts;
    const token = jwt.sign({ iss: teamId, iat: Math.floor(now / 1000) }, key, {
      algorithm: 'ES256',
      keyid: keyId,
    });
    this.#token = { jwt: token, at: now };
    return token;
  }

  async #send(reg: ApnsRegistration, message: WakeMessage): Promise<Answer> {
    const alert = this.#opts.pushType === 'alert';
    const fields = wakeFields(message);
    // Where the profile allows a preview, the alert names the sender (title) and the subject (body).
    const shown = fields.from === undefined ? {} : { title: fields.from };
    const aps = alert
      ? {
          alert: { ...shown, body: fields.subject ?? fields.text },
          badge: fields.count,
          'thread-id': message.collapseKey,
        }
      : { 'content-available': 1 };
    const body = JSON.stringify({ aps, wake: fields });
    const headers = {
      [constants.HTTP2_HEADER_METHOD]: 'POST',
      [constants.HTTP2_HEADER_PATH]: `/3/device/${reg.token}`,
      authorization: `bearer ${this.#providerToken()}`,
      'apns-topic': reg.topic,
      'apns-push-type': alert ? 'alert' : 'background',
      // Apple: a background push must be priority 5; an alert may be 10 (at once).
      'apns-priority': alert && message.urgency === 'high' ? '10' : '5',
      'apns-expiration': String(Math.floor(this.#now() / 1000) + message.ttl),
      'apns-collapse-id': message.collapseKey,
      'content-type': 'application/json',
      'content-length': String(Buffer.byteLength(body)),
    };
    const session = await this.#connected();
    return new Promise<Answer>((resolve, reject) => {
      const stream = session.request(headers);
      const deadline = setTimeout(() => {
        reject(new Error('APNs timed out'));
        stream.close(constants.NGHTTP2_CANCEL);
      }, this.#opts.timeoutMs ?? 10_000);
      let answerHeaders: IncomingHttpHeaders = {};
      const chunks: Buffer[] = [];
      let size = 0;
      stream.on('response', (h) => {
        answerHeaders = h;
      });
      stream.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size <= MAX_ANSWER) chunks.push(chunk);
        else stream.close(constants.NGHTTP2_CANCEL);
      });
      stream.on('error', (err) => {
        clearTimeout(deadline);
        reject(err);
      });
      stream.once('close', () => {
        clearTimeout(deadline);
        const status = Number(answerHeaders[constants.HTTP2_HEADER_STATUS] ?? 0);
        if (status === 0 || size > MAX_ANSWER)
          reject(new Error(`APNs stream closed (code ${stream.rstCode})`));
        else resolve({ status, headers: answerHeaders, body: Buffer.concat(chunks) });
      });
      stream.end(body);
    });
  }

  /** The origin's session: the open one, else a new one to the address the policy allows. */
  #connected(): Promise<ClientHttp2Session> {
    const current = this.#session;
    if (current) {
      return current.then(
        (s) => (s.closed || s.destroyed ? this.#reconnect(current) : s),
        () => this.#reconnect(current),
      );
    }
    return this.#reconnect(undefined);
  }

  #reconnect(stale: Promise<ClientHttp2Session> | undefined): Promise<ClientHttp2Session> {
    if (this.#session !== stale && this.#session !== undefined) return this.#connected();
    const opening = this.#open();
    this.#session = opening;
    opening.then(
      (s) => {
        const forget = () => {
          if (this.#session === opening) this.#session = undefined;
        };
        // A session that goes away is left to finish its streams; the next wake-up opens another.
        s.once('goaway', () => {
          forget();
          s.close();
        });
        s.once('close', forget);
        s.on('error', forget);
      },
      () => {
        if (this.#session === opening) this.#session = undefined;
      },
    );
    return opening;
  }

  async #open(): Promise<ClientHttp2Session> {
    const url = this.#origin;
    const port = url.port === '' ? 443 : Number(url.port);
    const target = await this.#opts.policy.check('push', url.hostname, port);
    const ca = this.#opts.ca;
    return new Promise<ClientHttp2Session>((resolve, reject) => {
      const session = http2Connect(url.origin, {
        createConnection: () =>
          tlsConnect({
            host: target.address,
            port,
            ALPNProtocols: ['h2'],
            ...(isIP(target.host) === 0 ? { servername: target.host } : {}),
            ...(ca ? { ca } : {}),
          }),
      });
      const timer = setTimeout(
        () => session.destroy(new Error('APNs connect timed out')),
        this.#opts.timeoutMs ?? 10_000,
      );
      session.once('connect', () => {
        clearTimeout(timer);
        // An idle session does not keep the process alive; streams under way do.
        session.unref();
        resolve(session);
      });
      session.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
  }
}

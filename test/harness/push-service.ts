/**
 * A Web Push service (RFC 8030) on loopback, over HTTPS with a certificate of
 * its own private CA (testing/test-ca.ts; the gateway trusts it through
 * NODE_EXTRA_CA_CERTS), for the wake-up tests. It hands out subscriptions as
 * a browser's push service does (an endpoint and the user agent's keys: an
 * ECDH P-256 pair and an auth secret kept here), and for every message it
 * checks the VAPID header (RFC 8292: an ES256 JWT whose `aud` is this
 * origin, `exp` within 24 h, `sub` mailto: or https:, signed by the key in
 * `k`), decrypts the body with http_ece (aes128gcm, RFC 8291), and records
 * what it got. A message it refuses is answered 401/400 and recorded too.
 *
 *   const push = await startPushService();
 *   const sub = push.subscribe();            // { endpoint, keys: { p256dh, auth } }
 *   push.answer(sub.endpoint, [410]);        // the next message(s) get these statuses
 *   … push.received                           // [{ endpoint, payload, ttl, urgency, topic, … }]
 */
import { createECDH, createPublicKey, randomBytes, verify } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import ece from 'http_ece';
import { makeTestCa, type TestCa } from '../../testing/test-ca.ts';

export interface PushSubscriptionJson {
  endpoint: string;
  keys: { p256dh: string; auth: string };
}

export interface ReceivedPush {
  endpoint: string;
  /** The decrypted payload, parsed as JSON (undefined when it did not decrypt or parse). */
  payload: unknown;
  status: number;
  /** Why it was refused (status 4xx other than the scripted ones). */
  refused?: string;
  ttl: number | undefined;
  urgency: string | undefined;
  topic: string | undefined;
  /** The VAPID key the message was signed with (base64url). */
  vapidKey: string | undefined;
  /** The VAPID JWT itself (a sender may reuse one until its `exp`). */
  jwt: string | undefined;
  at: number;
}

interface Answer {
  status: number;
  retryAfter?: string;
}

export interface PushService {
  origin: string;
  /** The CA's certificate (PEM path): NODE_EXTRA_CA_CERTS for the gateway. */
  caFile: string;
  subscribe(): PushSubscriptionJson;
  /** The next messages to `endpoint` are answered with these (then 201 again). */
  answer(endpoint: string, answers: (number | Answer)[]): void;
  received: ReceivedPush[];
  stop(): Promise<void>;
}

function jwtProblem(token: string, k: string, origin: string, now: number): string | undefined {
  const parts = token.split('.');
  if (parts.length !== 3) return 'not a JWT';
  const [h, p, s] = parts as [string, string, string];
  let header: { alg?: string; typ?: string };
  let claims: { aud?: string; exp?: number; sub?: string };
  try {
    header = JSON.parse(Buffer.from(h, 'base64url').toString());
    claims = JSON.parse(Buffer.from(p, 'base64url').toString());
  } catch {
    return 'JWT does not parse';
  }
  if (header.alg !== 'ES256') return `alg ${header.alg}`;
  const raw = Buffer.from(k, 'base64url');
  if (raw.length !== 65 || raw[0] !== 4) return 'k is not a P-256 point';
  const key = createPublicKey({
    key: {
      kty: 'EC',
      crv: 'P-256',
      x: raw.subarray(1, 33).toString('base64url'),
      y: raw.subarray(33).toString('base64url'),
    },
    format: 'jwk',
  });
  const ok = verify(
    'sha256',
    Buffer.from(`${h}.${p}`),
    { key, dsaEncoding: 'ieee-p1363' },
    Buffer.from(s, 'base64url'),
  );
  if (!ok) return 'bad signature';
  if (claims.aud !== origin) return `aud ${claims.aud}`;
  if (typeof claims.exp !== 'number' || claims.exp * 1000 < now || claims.exp * 1000 > now + 24 * 3600_000)
    return 'exp out of range';
  if (typeof claims.sub !== 'string' || !/^(mailto:|https:)/.test(claims.sub)) return 'sub';
  return undefined;
}

export async function startPushService(): Promise<PushService> {
  const ca: TestCa = makeTestCa('mmgw test push CA');
  const files = ca.server('push-service');
  const subscriptions = new Map<string, { ecdh: ReturnType<typeof createECDH>; auth: Buffer }>();
  const scripted = new Map<string, Answer[]>();
  const received: ReceivedPush[] = [];
  let origin = '';

  const server: Server = createServer(
    { cert: readFileSync(files.cert), key: readFileSync(files.key) },
    (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const endpoint = `${origin}${req.url ?? ''}`;
        const header = (name: string) => {
          const v = req.headers[name];
          return Array.isArray(v) ? v[0] : v;
        };
        const ttl = header('ttl');
        const record: ReceivedPush = {
          endpoint,
          payload: undefined,
          status: 201,
          ttl: ttl === undefined ? undefined : Number(ttl),
          urgency: header('urgency'),
          topic: header('topic'),
          vapidKey: undefined,
          jwt: undefined,
          at: Date.now(),
        };
        const refuse = (status: number, why: string) => {
          record.status = status;
          record.refused = why;
          received.push(record);
          res.writeHead(status).end();
        };
        const sub = subscriptions.get(endpoint);
        if (req.method !== 'POST' || !sub) return refuse(404, 'no such subscription');
        const auth = /^vapid t=([^,\s]+),\s*k=([A-Za-z0-9_-]+)$/.exec(header('authorization') ?? '');
        if (!auth) return refuse(401, 'no VAPID authorization');
        record.vapidKey = auth[2];
        record.jwt = auth[1];
        const problem = jwtProblem(auth[1]!, auth[2]!, origin, Date.now());
        if (problem) return refuse(401, `VAPID: ${problem}`);
        if (header('content-encoding') !== 'aes128gcm') return refuse(415, 'not aes128gcm');
        try {
          const plain = ece.decrypt(Buffer.concat(chunks), {
            version: 'aes128gcm',
            privateKey: sub.ecdh,
            authSecret: sub.auth,
          });
          record.payload = JSON.parse(plain.toString('utf8'));
        } catch (err) {
          return refuse(400, `payload: ${(err as Error).message}`);
        }
        const next = scripted.get(endpoint)?.shift();
        const answer = next ?? { status: 201 };
        record.status = answer.status;
        received.push(record);
        res.writeHead(answer.status, answer.retryAfter ? { 'retry-after': answer.retryAfter } : {}).end();
      });
    },
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    origin,
    caFile: ca.cert,
    received,
    subscribe() {
      const ecdh = createECDH('prime256v1');
      ecdh.generateKeys();
      const auth = randomBytes(16);
      const endpoint = `${origin}/push/${randomBytes(12).toString('base64url')}`;
      subscriptions.set(endpoint, { ecdh, auth });
      return {
        endpoint,
        keys: { p256dh: ecdh.getPublicKey().toString('base64url'), auth: auth.toString('base64url') },
      };
    },
    answer(endpoint, answers) {
      scripted.set(
        endpoint,
        answers.map((a) => (typeof a === 'number' ? { status: a } : a)),
      );
    },
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      ca.remove();
    },
  };
}

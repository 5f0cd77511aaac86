/**
 * Apple's push provider API on loopback, for the wake-up tests: an HTTP/2
 * server over TLS with a certificate of a private CA (testing/test-ca.ts),
 * speaking the documented request, auth and error shapes:
 *
 * - POST /3/device/<token> with `authorization: bearer <JWT>`: ES256, kid the
 *   key id, iss the team id, iat within the last hour (else 403
 *   ExpiredProviderToken), signed by the .p8 key (checked with its public
 *   half; else 403 InvalidProviderToken); apns-topic the token's app (400
 *   DeviceTokenNotForTopic); apns-push-type background (priority 5, aps
 *   content-available 1, no alert) or alert; apns-expiration,
 *   apns-collapse-id (≤ 64 bytes). A token it never issued is 400
 *   BadDeviceToken, one whose app is gone 410 Unregistered; scripted 429
 *   TooManyRequests / 503 ServiceUnavailable with Retry-After.
 *
 *   const apns = await startApnsService();   // apns.keyFile (.p8), apns.keyId, apns.teamId
 *   const token = apns.issueToken('com.example.mail');
 *   apns.unregister(token); apns.expireProviderTokens(); apns.goAway();
 *   … apns.received                            // [{ token, topic, pushType, priority, payload, status, reason, session }]
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import {
  constants,
  createSecureServer,
  type Http2SecureServer,
  type IncomingHttpHeaders,
  type ServerHttp2Session,
} from 'node:http2';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import jwt from 'jsonwebtoken';
import { HeldAnswers } from '../../testing/held-answers.ts';
import { makeTestCa, type TestCa } from '../../testing/test-ca.ts';

export interface ReceivedApns {
  token: string;
  topic: string | undefined;
  pushType: string | undefined;
  priority: string | undefined;
  expiration: string | undefined;
  collapseId: string | undefined;
  payload: any;
  status: number;
  reason?: string;
  /** Which HTTP/2 connection it came on (1, 2, …). */
  session: number;
  /** The provider token (JWT) it carried. */
  jwt: string | undefined;
  at: number;
}

export interface ApnsService {
  origin: string;
  keyFile: string;
  keyId: string;
  teamId: string;
  caFile: string;
  /** A device token of an app with this bundle id (64 hex digits). */
  issueToken(topic: string): string;
  unregister(token: string): void;
  answer(token: string, answers: { status: number; retryAfter?: string }[]): void;
  /** Every provider token seen so far is answered ExpiredProviderToken from now on. */
  expireProviderTokens(): void;
  /** Sends GOAWAY on every open connection (as APNs does when it rotates servers). */
  goAway(): void;
  /** HTTP/2 connections accepted so far. */
  readonly sessions: number;
  received: ReceivedApns[];
  /** Hold back the answers (`held.holding = true`) to count the streams under way. */
  held: HeldAnswers;
  stop(): Promise<void>;
}

const REASONS: Record<number, string> = {
  429: 'TooManyRequests',
  500: 'InternalServerError',
  503: 'ServiceUnavailable',
};

export async function startApnsService(opts: { ca?: TestCa } = {}): Promise<ApnsService> {
  const ca = opts.ca ?? makeTestCa('mmgw test APNs CA');
  const files = ca.server('apns-service');
  const dir = mkdtempSync(join(tmpdir(), 'mmgw-apns-'));
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const keyId = 'K3YID12345';
  const teamId = 'T3AM123456';
  const keyFile = join(dir, `AuthKey_${keyId}.p8`);
  writeFileSync(keyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }));
  const tokens = new Map<string, string>();
  const unregistered = new Set<string>();
  const expired = new Set<string>();
  const seen = new Set<string>();
  const scripted = new Map<string, { status: number; retryAfter?: string }[]>();
  const received: ReceivedApns[] = [];
  const open = new Set<ServerHttp2Session>();
  const sessionIds = new WeakMap<ServerHttp2Session, number>();
  let sessions = 0;

  const providerProblem = (token: string): string | undefined => {
    if (expired.has(token)) return 'ExpiredProviderToken';
    let decoded: jwt.Jwt;
    try {
      decoded = jwt.verify(token, publicKey, {
        algorithms: ['ES256'],
        complete: true,
        issuer: teamId,
      }) as jwt.Jwt;
    } catch {
      return 'InvalidProviderToken';
    }
    if (decoded.header.kid !== keyId) return 'InvalidProviderToken';
    const iat = (decoded.payload as jwt.JwtPayload).iat;
    if (typeof iat !== 'number') return 'MissingProviderToken';
    if (iat * 1000 < Date.now() - 3600_000) return 'ExpiredProviderToken';
    return undefined;
  };

  const server: Http2SecureServer = createSecureServer({
    cert: readFileSync(files.cert),
    key: readFileSync(files.key),
  });
  server.on('session', (s: ServerHttp2Session) => {
    sessionIds.set(s, ++sessions);
    open.add(s);
    s.once('close', () => open.delete(s));
  });
  const held = new HeldAnswers();
  server.on('stream', (stream, headers: IncomingHttpHeaders) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () =>
      held.answer(() => {
        const h = (name: string) => {
          const v = headers[name];
          return Array.isArray(v) ? v[0] : v;
        };
        const path = h(constants.HTTP2_HEADER_PATH) ?? '';
        const bearer = /^bearer (\S+)$/.exec(h('authorization') ?? '')?.[1];
        let payload: any;
        try {
          payload = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        } catch {
          payload = undefined;
        }
        const record: ReceivedApns = {
          token: path.replace(/^\/3\/device\//, ''),
          topic: h('apns-topic'),
          pushType: h('apns-push-type'),
          priority: h('apns-priority'),
          expiration: h('apns-expiration'),
          collapseId: h('apns-collapse-id'),
          payload,
          status: 200,
          session: sessionIds.get(stream.session as ServerHttp2Session) ?? 0,
          jwt: bearer,
          at: Date.now(),
        };
        const answer = (status: number, reason?: string, extra: Record<string, string> = {}) => {
          record.status = status;
          if (reason) record.reason = reason;
          received.push(record);
          const id = randomBytes(16).toString('hex');
          stream.respond({ ':status': status, 'apns-id': id, ...extra });
          stream.end(
            reason
              ? JSON.stringify({ reason, ...(status === 410 ? { timestamp: Date.now() } : {}) })
              : undefined,
          );
        };
        if (h(constants.HTTP2_HEADER_METHOD) !== 'POST' || !path.startsWith('/3/device/'))
          return answer(405, 'MethodNotAllowed');
        if (bearer === undefined) return answer(403, 'MissingProviderToken');
        const problem = providerProblem(bearer);
        if (problem) return answer(403, problem);
        seen.add(bearer);
        const topic = tokens.get(record.token);
        if (topic === undefined) return answer(400, 'BadDeviceToken');
        if (record.topic === undefined) return answer(400, 'MissingTopic');
        if (record.topic !== topic) return answer(400, 'DeviceTokenNotForTopic');
        if (!['background', 'alert'].includes(record.pushType ?? '')) return answer(400, 'InvalidPushType');
        if (typeof payload?.aps !== 'object') return answer(400, 'PayloadEmpty');
        if (
          record.pushType === 'background' &&
          (record.priority !== '5' ||
            payload.aps['content-available'] !== 1 ||
            payload.aps.alert !== undefined)
        )
          return answer(400, 'BadPriority');
        if (!/^\d+$/.test(record.expiration ?? '0')) return answer(400, 'BadExpirationDate');
        if (Buffer.byteLength(record.collapseId ?? '') > 64) return answer(400, 'BadCollapseId');
        if (unregistered.has(record.token)) return answer(410, 'Unregistered');
        const next = scripted.get(record.token)?.shift();
        if (next) {
          return answer(
            next.status,
            REASONS[next.status] ?? 'InternalServerError',
            next.retryAfter ? { 'retry-after': next.retryAfter } : {},
          );
        }
        answer(200);
      }),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    origin,
    keyFile,
    keyId,
    teamId,
    caFile: ca.cert,
    received,
    held,
    get sessions() {
      return sessions;
    },
    issueToken(topic) {
      const t = randomBytes(32).toString('hex');
      tokens.set(t, topic);
      return t;
    },
    unregister: (t) => void unregistered.add(t),
    answer: (t, answers) => void scripted.set(t, [...answers]),
    expireProviderTokens() {
      for (const t of seen) expired.add(t);
    },
    goAway() {
      for (const s of open) s.goaway(constants.NGHTTP2_NO_ERROR);
    },
    async stop() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of open) s.destroy();
      });
      rmSync(dir, { recursive: true, force: true });
      if (!opts.ca) ca.remove();
    },
  };
}

/**
 * Firebase Cloud Messaging's HTTP v1 API on loopback, for the wake-up tests:
 * an HTTP/2 server (HTTP/1.1 accepted too, as Google's is) over TLS with a
 * certificate of a private CA (testing/test-ca.ts), speaking the documented
 * shapes:
 *
 * - POST /token: the OAuth2 JWT bearer grant (RFC 7523) as Google's
 *   token_uri takes it; the assertion must be RS256, signed by the service
 *   account's key (checked with its public half), iss the client_email, aud
 *   this token_uri, scope firebase.messaging, exp at most an hour after iat.
 *   Answers {access_token, expires_in, token_type}.
 * - POST /v1/projects/<project>/messages:send with `Authorization: Bearer`
 *   of a token it issued and has not expired: checks the message (token,
 *   data of strings, android priority / ttl / collapse_key) and answers
 *   {name}, or the errors FCM documents: 401 UNAUTHENTICATED, 400
 *   INVALID_ARGUMENT (about message.token for a token it never issued), 404
 *   UNREGISTERED, and scripted 429 / 503 with Retry-After.
 *
 *   const fcm = await startFcmService();     // fcm.serviceAccountFile: the JSON key file
 *   const token = fcm.issueToken();          // what the app's FirebaseMessaging.getToken() would give
 *   fcm.unregister(token);  fcm.answer(token, [{ status: 429, retryAfter: '1' }]);  fcm.expireAccessTokens();
 *   … fcm.received                            // [{ token, data, android, status, at }]
 */
import { generateKeyPairSync, type KeyObject, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createSecureServer, type Http2SecureServer } from 'node:http2';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import jwt from 'jsonwebtoken';
import { HeldAnswers } from '../../testing/held-answers.ts';
import { makeTestCa, type TestCa } from '../../testing/test-ca.ts';

export const FCM_PROJECT = 'mmgw-wake-test';

export interface ReceivedFcm {
  token: string | undefined;
  data: Record<string, unknown> | undefined;
  android: Record<string, unknown> | undefined;
  status: number;
  /** FCM's status or errorCode for a refusal. */
  error?: string;
  at: number;
}

interface Scripted {
  status: number;
  retryAfter?: string;
}

export interface FcmService {
  origin: string;
  /** The service account's JSON key file (project_id, client_email, private_key, token_uri). */
  serviceAccountFile: string;
  /** The CA's certificate (PEM path). */
  caFile: string;
  issueToken(): string;
  /** The token's app was uninstalled: the next sends get 404 UNREGISTERED. */
  unregister(token: string): void;
  /** The next sends to `token` get these statuses (429 QUOTA_EXCEEDED, 503 UNAVAILABLE, …). */
  answer(token: string, answers: Scripted[]): void;
  /** Every access token issued so far stops working (sends get 401). */
  expireAccessTokens(): void;
  /** Access tokens issued, and assertions refused, so far. */
  tokenGrants: { issued: number; refused: string[] };
  received: ReceivedFcm[];
  /** Hold back the answers of messages:send (`held.holding = true`) to count the sends under way. */
  held: HeldAnswers;
  stop(): Promise<void>;
}

type Req = IncomingMessage & { url?: string };

function fcmErrorBody(code: number, status: string, message: string, details: object[] = []) {
  return JSON.stringify({ error: { code, message, status, details } });
}

function assertionProblem(
  assertion: string,
  key: KeyObject,
  email: string,
  tokenUri: string,
): string | undefined {
  let claims: jwt.JwtPayload;
  try {
    claims = jwt.verify(assertion, key, {
      algorithms: ['RS256'],
      audience: tokenUri,
      issuer: email,
    }) as jwt.JwtPayload;
  } catch (err) {
    return (err as Error).message;
  }
  if (
    typeof claims.scope !== 'string' ||
    !claims.scope.split(' ').includes('https://www.googleapis.com/auth/firebase.messaging')
  )
    return 'scope';
  if (typeof claims.iat !== 'number' || typeof claims.exp !== 'number' || claims.exp - claims.iat > 3600)
    return 'exp more than an hour after iat';
  return undefined;
}

/** `ca`: a CA to issue the server certificate from (one NODE_EXTRA_CA_CERTS for several services). */
export async function startFcmService(
  opts: { ca?: TestCa; accessTokenSeconds?: number } = {},
): Promise<FcmService> {
  const ca = opts.ca ?? makeTestCa('mmgw test FCM CA');
  const files = ca.server('fcm-service');
  const dir = mkdtempSync(join(tmpdir(), 'mmgw-fcm-'));
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const email = `wake@${FCM_PROJECT}.iam.gserviceaccount.com`;
  const issued = new Map<string, number>();
  const deviceTokens = new Set<string>();
  const unregistered = new Set<string>();
  const scripted = new Map<string, Scripted[]>();
  const received: ReceivedFcm[] = [];
  const tokenGrants = { issued: 0, refused: [] as string[] };
  let origin = '';

  const token = (req: Req, res: ServerResponse, body: string) => {
    const form = new URLSearchParams(body);
    const refuse = (why: string) => {
      tokenGrants.refused.push(why);
      res.writeHead(400, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: 'invalid_grant', error_description: why }));
    };
    if (req.headers['content-type'] !== 'application/x-www-form-urlencoded') return refuse('content-type');
    if (form.get('grant_type') !== 'urn:ietf:params:oauth:grant-type:jwt-bearer') return refuse('grant_type');
    const problem = assertionProblem(form.get('assertion') ?? '', publicKey, email, `${origin}/token`);
    if (problem) return refuse(problem);
    const access = `ya29.${randomBytes(24).toString('base64url')}`;
    const seconds = opts.accessTokenSeconds ?? 3600;
    issued.set(access, Date.now() + seconds * 1000);
    tokenGrants.issued++;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ access_token: access, expires_in: seconds, token_type: 'Bearer' }));
  };

  const send = (req: Req, res: ServerResponse, body: string) => {
    const record: ReceivedFcm = {
      token: undefined,
      data: undefined,
      android: undefined,
      status: 200,
      at: Date.now(),
    };
    const answer = (status: number, text: string, error?: string, headers: Record<string, string> = {}) => {
      record.status = status;
      if (error) record.error = error;
      received.push(record);
      res.writeHead(status, { 'content-type': 'application/json', ...headers });
      res.end(text);
    };
    const bearer = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '')?.[1];
    const until = bearer === undefined ? undefined : issued.get(bearer);
    if (until === undefined || until < Date.now()) {
      return answer(
        401,
        fcmErrorBody(401, 'UNAUTHENTICATED', 'Request had invalid authentication credentials.'),
        'UNAUTHENTICATED',
      );
    }
    let message: any;
    try {
      message = JSON.parse(body).message;
    } catch {
      message = undefined;
    }
    record.token = message?.token;
    record.data = message?.data;
    record.android = message?.android;
    const invalid = (why: string, field: string) =>
      answer(
        400,
        fcmErrorBody(400, 'INVALID_ARGUMENT', why, [
          { '@type': 'type.googleapis.com/google.firebase.fcm.v1.FcmError', errorCode: 'INVALID_ARGUMENT' },
          {
            '@type': 'type.googleapis.com/google.rpc.BadRequest',
            fieldViolations: [{ field, description: why }],
          },
        ]),
        'INVALID_ARGUMENT',
      );
    if (typeof message !== 'object' || message === null) return invalid('no message', 'message');
    const data = message.data;
    if (typeof data !== 'object' || data === null || !Object.values(data).every((v) => typeof v === 'string'))
      return invalid('data values must be strings', 'message.data');
    const a = message.android ?? {};
    if (!['HIGH', 'NORMAL', undefined].includes(a.priority))
      return invalid('priority', 'message.android.priority');
    if (a.ttl !== undefined && !/^\d+(\.\d+)?s$/.test(a.ttl)) return invalid('ttl', 'message.android.ttl');
    if (typeof message.token !== 'string' || !deviceTokens.has(message.token))
      return invalid('The registration token is not a valid FCM registration token', 'message.token');
    if (unregistered.has(message.token)) {
      return answer(
        404,
        fcmErrorBody(404, 'NOT_FOUND', 'Requested entity was not found.', [
          { '@type': 'type.googleapis.com/google.firebase.fcm.v1.FcmError', errorCode: 'UNREGISTERED' },
        ]),
        'UNREGISTERED',
      );
    }
    const next = scripted.get(message.token)?.shift();
    if (next) {
      const status = next.status === 429 ? 'RESOURCE_EXHAUSTED' : 'UNAVAILABLE';
      const errorCode = next.status === 429 ? 'QUOTA_EXCEEDED' : 'UNAVAILABLE';
      return answer(
        next.status,
        fcmErrorBody(next.status, status, errorCode, [
          { '@type': 'type.googleapis.com/google.firebase.fcm.v1.FcmError', errorCode },
        ]),
        errorCode,
        next.retryAfter ? { 'retry-after': next.retryAfter } : {},
      );
    }
    answer(
      200,
      JSON.stringify({ name: `projects/${FCM_PROJECT}/messages/${randomBytes(8).toString('hex')}` }),
    );
  };

  const held = new HeldAnswers();
  const server: Http2SecureServer = createSecureServer(
    { cert: readFileSync(files.cert), key: readFileSync(files.key), allowHTTP1: true },
    (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        const r = req as unknown as Req;
        const w = res as unknown as ServerResponse;
        if (req.method === 'POST' && req.url === '/token') return token(r, w, body);
        if (req.method === 'POST' && req.url === `/v1/projects/${FCM_PROJECT}/messages:send`)
          return held.answer(() => send(r, w, body));
        w.writeHead(404).end();
      });
    },
  );
  const sockets = new Set<TLSSocket>();
  server.on('secureConnection', (s: TLSSocket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const serviceAccountFile = join(dir, 'service-account.json');
  writeFileSync(
    serviceAccountFile,
    JSON.stringify({
      type: 'service_account',
      project_id: FCM_PROJECT,
      private_key_id: randomBytes(20).toString('hex'),
      private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }),
      client_email: email,
      token_uri: `${origin}/token`,
    }),
  );

  return {
    origin,
    serviceAccountFile,
    caFile: ca.cert,
    tokenGrants,
    received,
    held,
    issueToken() {
      const t = `${randomBytes(11).toString('base64url')}:APA91b${randomBytes(100).toString('base64url')}`;
      deviceTokens.add(t);
      return t;
    },
    unregister: (t) => void unregistered.add(t),
    answer: (t, answers) => void scripted.set(t, [...answers]),
    expireAccessTokens() {
      for (const k of issued.keys()) issued.set(k, 0);
    },
    async stop() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Keep-alive connections: closed now, not when their clients let go.
        for (const s of sockets) s.destroy();
      });
      rmSync(dir, { recursive: true, force: true });
      if (!opts.ca) ca.remove();
    },
  };
}

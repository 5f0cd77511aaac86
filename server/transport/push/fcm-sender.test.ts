/**
 * The FCM sender against the local FCM service (test/harness/fcm-service.ts:
 * HTTP/2 and HTTP/1.1 over TLS, the OAuth2 token endpoint checking the JWT
 * with the service account's public key, messages:send checking the bearer).
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { type FcmService, startFcmService } from '../../../test/harness/fcm-service.ts';
import { DestinationPolicy } from '../../net/destination-policy.ts';
import { mailWake, chatWake } from '../../../testing/wake-messages.ts';
import { sendWithRetries } from './channel.ts';
import { burstThroughHeld } from '../../../testing/held-answers.ts';
import { FcmSender, fcmError } from './fcm-sender.ts';
import { loadServiceAccount } from './settings.ts';

const MAIL = mailWake(3);
const CHAT = chatWake(1);

describe('FCM sender', () => {
  let fcm: FcmService;
  let ca: string;
  const loopback = new DestinationPolicy({ allow: ['127.0.0.1'] });
  const senderWith = (o: Partial<ConstructorParameters<typeof FcmSender>[0]> = {}) =>
    new FcmSender({
      account: loadServiceAccount(fcm.serviceAccountFile),
      policy: loopback,
      endpoint: fcm.origin,
      ca,
      ...o,
    });

  before(async () => {
    fcm = await startFcmService();
    ca = readFileSync(fcm.caFile, 'utf8');
  });
  after(() => fcm?.stop());

  test('a wake-up is a data message with the android priority, TTL and collapse key; one access token serves many', async () => {
    const sender = senderWith();
    const token = fcm.issueToken();
    assert.deepEqual(await sender.attempt({ kind: 'fcm', token, at: 0 }, MAIL), { result: 'sent' });
    assert.deepEqual(await sender.attempt({ kind: 'fcm', token, at: 0 }, CHAT), { result: 'sent' });
    const [mail, chat] = fcm.received.slice(-2);
    assert.equal(mail!.token, token);
    assert.deepEqual(mail!.data, { kind: 'mail', count: '3', mail: '3', chat: '0', text: '3 new messages' });
    assert.deepEqual(mail!.android, { priority: 'NORMAL', ttl: '86400s', collapse_key: 'wake' });
    assert.deepEqual(chat!.data, { kind: 'chat', count: '1', mail: '0', chat: '1', text: 'New message' });
    assert.deepEqual(chat!.android, { priority: 'HIGH', ttl: '3600s', collapse_key: 'wake' });
    assert.equal(fcm.tokenGrants.issued, 1, 'the access token is kept between sends');
  });

  test('a wake-up with a preview carries from and subject as data strings', async () => {
    const sender = senderWith();
    const token = fcm.issueToken();
    const preview = { from: 'Alice Example', subject: 'Lunch at noon?' };
    assert.deepEqual(await sender.attempt({ kind: 'fcm', token, at: 0 }, { ...MAIL, preview }), {
      result: 'sent',
    });
    assert.deepEqual(fcm.received.at(-1)!.data, {
      kind: 'mail',
      count: '3',
      mail: '3',
      chat: '0',
      text: '3 new messages',
      from: 'Alice Example',
      subject: 'Lunch at noon?',
    });
  });

  test('a 401 fetches a new access token once and sends again; an expired one is renewed before sending', async () => {
    let now = Date.now();
    const sender = senderWith({ now: () => now });
    const token = fcm.issueToken();
    const reg = { kind: 'fcm' as const, token, at: 0 };
    assert.deepEqual(await sender.attempt(reg, MAIL), { result: 'sent' });
    const grants = fcm.tokenGrants.issued;
    fcm.expireAccessTokens();
    assert.deepEqual(await sender.attempt(reg, MAIL), { result: 'sent' });
    assert.equal(fcm.tokenGrants.issued, grants + 1);
    assert.deepEqual(
      fcm.received.slice(-2).map((r) => r.status),
      [401, 200],
    );
    // Within a minute of its expiry (1 h) the token is not used: a new one is fetched first.
    now += 3600_000 - 30_000;
    assert.deepEqual(await sender.attempt(reg, MAIL), { result: 'sent' });
    assert.equal(fcm.tokenGrants.issued, grants + 2);
    assert.equal(fcm.received.at(-1)!.status, 200);
  });

  test('UNREGISTERED and an invalid token are gone; 429 and 503 are retried after Retry-After', async () => {
    const sender = senderWith();
    const gone = fcm.issueToken();
    fcm.unregister(gone);
    assert.deepEqual(await sender.attempt({ kind: 'fcm', token: gone, at: 0 }, MAIL), {
      result: 'gone',
      code: 'fcm_unregistered',
      why: 'FCM answered 404 UNREGISTERED',
    });
    const never = await sender.attempt({ kind: 'fcm', token: 'not-a-token-fcm-ever-issued', at: 0 }, MAIL);
    assert.equal(never.result, 'gone');
    assert.equal((never as { code: string }).code, 'fcm_invalid_argument');

    const busy = fcm.issueToken();
    fcm.answer(busy, [{ status: 429, retryAfter: '7' }, { status: 503 }]);
    const waits: number[] = [];
    const sent = await sendWithRetries(sender, { kind: 'fcm', token: busy, at: 0 }, MAIL, {
      sleep: async (ms) => void waits.push(ms),
    });
    assert.deepEqual(sent, { result: 'sent' });
    assert.deepEqual(waits, [7000, 2000], 'Retry-After, then the doubling backoff');
    assert.deepEqual(
      fcm.received.slice(-3).map((r) => r.error ?? r.status),
      ['QUOTA_EXCEEDED', 'UNAVAILABLE', 200],
    );
  });

  test('an assertion signed with another key gets no access token: the send fails and is not counted sent', async () => {
    const account = loadServiceAccount(fcm.serviceAccountFile);
    const other = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({
      type: 'pkcs8',
      format: 'pem',
    });
    const sender = senderWith({ account: { ...account, private_key: String(other) } });
    const refused = fcm.tokenGrants.refused.length;
    await assert.rejects(
      sender.attempt({ kind: 'fcm', token: fcm.issueToken(), at: 0 }, MAIL),
      /token endpoint answered 400/,
    );
    assert.equal(fcm.tokenGrants.refused.length, refused + 1);
    assert.match(fcm.tokenGrants.refused.at(-1)!, /signature/);
  });

  test('a burst keeps at most maxInFlight messages under way', async () => {
    const sender = senderWith({ maxInFlight: 4 });
    const token = fcm.issueToken();
    let waitingAtStart = -1;
    try {
      const most = await burstThroughHeld(fcm.held, {
        n: 40,
        limit: 4,
        send: () => sender.attempt({ kind: 'fcm', token, at: 0 }, MAIL),
        started: () => (waitingAtStart = sender.inFlight.waiting),
      });
      assert.equal(waitingAtStart, 36, 'past the bound, wake-ups wait in the sender');
      assert.equal(most, 4);
      assert.equal(fcm.received.filter((r) => r.token === token && r.status === 200).length, 40);
    } finally {
      await sender.close();
    }
  });

  test('the outbound policy applies: loopback not allowed, nothing is sent', async () => {
    const sender = senderWith({ policy: new DestinationPolicy() });
    const before = fcm.received.length;
    const grants = fcm.tokenGrants.issued;
    const result = await sendWithRetries(sender, { kind: 'fcm', token: fcm.issueToken(), at: 0 }, MAIL);
    assert.deepEqual(result, { result: 'failed', why: 'policy' });
    assert.equal(fcm.received.length, before);
    assert.equal(fcm.tokenGrants.issued, grants);
  });
});

test('fcmError reads the errorCode, and whether a 400 is about the token; hostile bodies read as unreadable', () => {
  const body = (o: unknown) => Buffer.from(JSON.stringify(o));
  assert.deepEqual(
    fcmError(
      body({
        error: {
          status: 'INVALID_ARGUMENT',
          details: [{ fieldViolations: [{ field: 'message.android.ttl' }] }],
        },
      }),
    ),
    { code: 'INVALID_ARGUMENT', aboutToken: false },
  );
  assert.deepEqual(
    fcmError(body({ error: { status: 'NOT_FOUND', details: [{ errorCode: 'UNREGISTERED' }] } })),
    {
      code: 'UNREGISTERED',
      aboutToken: false,
    },
  );
  assert.deepEqual(fcmError(Buffer.from('<html>')), { code: 'unreadable', aboutToken: false });
  assert.deepEqual(fcmError(undefined), { code: 'unreadable', aboutToken: false });
  assert.deepEqual(fcmError(body({ error: { status: 'x'.repeat(100) } })), {
    code: 'unreadable',
    aboutToken: false,
  });
});

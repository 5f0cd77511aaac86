/**
 * The APNs sender against the local APNs service (test/harness/apns-service.ts:
 * HTTP/2 over TLS, the ES256 provider token checked with the key's public
 * half, the documented reasons).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { type ApnsService, startApnsService } from '../../../test/harness/apns-service.ts';
import { DestinationPolicy } from '../../net/destination-policy.ts';
import { burstThroughHeld } from '../../../testing/held-answers.ts';
import { ApnsSender, type ApnsSenderOptions } from './apns-sender.ts';
import { mailWake, chatWake } from '../../../testing/wake-messages.ts';
import { sendWithRetries } from './channel.ts';
import { loadApnsKey } from './settings.ts';

const TOPIC = 'com.example.mmgw';
const MAIL = mailWake(2);
const CHAT = chatWake(1);

describe('APNs sender', () => {
  let apns: ApnsService;
  let ca: string;
  const open: ApnsSender[] = [];
  const loopback = new DestinationPolicy({ allow: ['127.0.0.1'] });
  const senderWith = (o: Partial<ApnsSenderOptions> = {}) => {
    const sender = new ApnsSender({
      keyId: apns.keyId,
      teamId: apns.teamId,
      key: loadApnsKey(apns.keyFile),
      origin: apns.origin,
      policy: loopback,
      ca,
      ...o,
    });
    open.push(sender);
    return sender;
  };
  const reg = (token: string) => ({ kind: 'apns' as const, token, topic: TOPIC, at: 0 });

  before(async () => {
    apns = await startApnsService();
    ca = readFileSync(apns.caFile, 'utf8');
  });
  after(async () => {
    for (const s of open) await s.close();
    await apns?.stop();
  });

  test('a background wake-up: content-available, priority 5, expiration, collapse id; one connection for many', async () => {
    const sender = senderWith();
    const token = apns.issueToken(TOPIC);
    const sessions = apns.sessions;
    const before = Math.floor(Date.now() / 1000);
    assert.deepEqual(await sender.attempt(reg(token), MAIL), { result: 'sent' });
    assert.deepEqual(await sender.attempt(reg(token), CHAT), { result: 'sent' });
    const [mail, chat] = apns.received.slice(-2);
    assert.equal(mail!.status, 200);
    assert.equal(mail!.token, token);
    assert.equal(mail!.topic, TOPIC);
    assert.equal(mail!.pushType, 'background');
    assert.equal(mail!.priority, '5');
    assert.equal(mail!.collapseId, 'wake');
    const expiration = Number(mail!.expiration);
    assert.ok(expiration >= before + 86400 && expiration <= before + 86400 + 60, `expiration ${expiration}`);
    assert.deepEqual(mail!.payload, {
      aps: { 'content-available': 1 },
      wake: { kind: 'mail', count: 2, mail: 2, chat: 0, text: '2 new messages' },
    });
    assert.equal(chat!.priority, '5', 'a background push is priority 5 even for chat');
    assert.equal(apns.sessions, sessions + 1, 'one HTTP/2 connection');
    assert.equal(chat!.session, mail!.session);
    assert.equal(chat!.jwt, mail!.jwt, 'the provider token is reused');
  });

  test('alert pushes, when configured, carry the placeholder text; chat goes at priority 10', async () => {
    const sender = senderWith({ pushType: 'alert' });
    const token = apns.issueToken(TOPIC);
    assert.deepEqual(await sender.attempt(reg(token), CHAT), { result: 'sent' });
    const got = apns.received.at(-1)!;
    assert.equal(got.pushType, 'alert');
    assert.equal(got.priority, '10');
    assert.deepEqual(got.payload.aps, { alert: { body: 'New message' }, badge: 1, 'thread-id': 'wake' });
  });

  test('an alert push with a preview names the sender as title and the subject as body; the wake fields too', async () => {
    const sender = senderWith({ pushType: 'alert' });
    const token = apns.issueToken(TOPIC);
    const preview = { from: 'Alice Example', subject: 'Lunch at noon?' };
    assert.deepEqual(await sender.attempt(reg(token), { ...MAIL, preview }), { result: 'sent' });
    const got = apns.received.at(-1)!;
    assert.deepEqual(got.payload.aps.alert, { title: 'Alice Example', body: 'Lunch at noon?' });
    assert.equal(got.payload.wake.from, 'Alice Example');
    assert.equal(got.payload.wake.subject, 'Lunch at noon?');
    // Sender alone (a chat message): the placeholder stays the body.
    assert.deepEqual(await sender.attempt(reg(token), { ...CHAT, preview: { from: 'carol@x.test' } }), {
      result: 'sent',
    });
    assert.deepEqual(apns.received.at(-1)!.payload.aps.alert, { title: 'carol@x.test', body: 'New message' });
  });

  test('the provider token is renewed after 50 minutes, and at once on ExpiredProviderToken', async () => {
    let now = Date.now();
    const sender = senderWith({ now: () => now });
    const token = apns.issueToken(TOPIC);
    assert.deepEqual(await sender.attempt(reg(token), MAIL), { result: 'sent' });
    const first = apns.received.at(-1)!.jwt;
    now += 49 * 60_000;
    assert.deepEqual(await sender.attempt(reg(token), MAIL), { result: 'sent' });
    assert.equal(apns.received.at(-1)!.jwt, first);
    now += 2 * 60_000;
    assert.deepEqual(await sender.attempt(reg(token), MAIL), { result: 'sent' });
    const second = apns.received.at(-1)!.jwt;
    assert.notEqual(second, first);

    apns.expireProviderTokens();
    now += 60_000;
    assert.deepEqual(await sender.attempt(reg(token), MAIL), { result: 'sent' });
    const [refused, renewed] = apns.received.slice(-2);
    assert.deepEqual([refused!.status, refused!.reason, refused!.jwt], [403, 'ExpiredProviderToken', second]);
    assert.equal(renewed!.status, 200);
    assert.notEqual(renewed!.jwt, second);
  });

  test('Unregistered and BadDeviceToken are gone; 429 and 503 are retried after Retry-After; others fail', async () => {
    const sender = senderWith();
    const gone = apns.issueToken(TOPIC);
    apns.unregister(gone);
    assert.deepEqual(await sender.attempt(reg(gone), MAIL), {
      result: 'gone',
      code: 'apns_Unregistered',
      why: 'APNs answered 410 Unregistered',
    });
    assert.deepEqual(await sender.attempt(reg('ab'.repeat(32)), MAIL), {
      result: 'gone',
      code: 'apns_BadDeviceToken',
      why: 'APNs answered 400 BadDeviceToken',
    });
    const otherApp = await sender.attempt({ ...reg(apns.issueToken('com.example.other')) }, MAIL);
    assert.deepEqual(otherApp, {
      result: 'failed',
      why: 'APNs answered 400 DeviceTokenNotForTopic',
      retry: false,
      retryAfter: undefined,
    });

    const busy = apns.issueToken(TOPIC);
    apns.answer(busy, [{ status: 429, retryAfter: '3' }, { status: 503 }]);
    const waits: number[] = [];
    const sent = await sendWithRetries(sender, reg(busy), MAIL, { sleep: async (ms) => void waits.push(ms) });
    assert.deepEqual(sent, { result: 'sent' });
    assert.deepEqual(waits, [3000, 2000]);
    assert.deepEqual(
      apns.received.slice(-3).map((r) => r.reason ?? r.status),
      ['TooManyRequests', 'ServiceUnavailable', 200],
    );
  });

  test('after GOAWAY the next wake-up opens a new connection', async () => {
    const sender = senderWith();
    const token = apns.issueToken(TOPIC);
    assert.deepEqual(await sender.attempt(reg(token), MAIL), { result: 'sent' });
    const first = apns.received.at(-1)!.session;
    apns.goAway();
    // The client sees the GOAWAY frame a moment later; a wake-up that races it is retried as a network failure.
    const sent = await sendWithRetries(sender, reg(token), MAIL, { sleep: (ms) => sleep(Math.min(ms, 200)) });
    assert.deepEqual(sent, { result: 'sent' });
    const second = apns.received.at(-1)!.session;
    assert.notEqual(second, first);
    assert.deepEqual(await sender.attempt(reg(token), MAIL), { result: 'sent' });
    assert.equal(apns.received.at(-1)!.session, second, 'the new connection is kept');
  });

  test('a burst keeps at most maxInFlight streams open on the one connection', async () => {
    const sender = senderWith({ maxInFlight: 4 });
    const token = apns.issueToken(TOPIC);
    const sessions = apns.sessions;
    let waitingAtStart = -1;
    const most = await burstThroughHeld(apns.held, {
      n: 40,
      limit: 4,
      send: () => sender.attempt(reg(token), MAIL),
      started: () => (waitingAtStart = sender.inFlight.waiting),
    });
    assert.equal(waitingAtStart, 36, 'past the bound, wake-ups wait in the sender');
    assert.equal(most, 4);
    assert.equal(apns.sessions, sessions + 1);
    assert.equal(apns.received.filter((r) => r.token === token && r.status === 200).length, 40);
  });

  test('the outbound policy applies to the APNs host: loopback not allowed, no connection', async () => {
    const sender = senderWith({ policy: new DestinationPolicy() });
    const sessions = apns.sessions;
    const result = await sendWithRetries(sender, reg(apns.issueToken(TOPIC)), MAIL);
    assert.deepEqual(result, { result: 'failed', why: 'policy' });
    assert.equal(apns.sessions, sessions);
  });
});

/**
 * Wake-ups end to end (issue 14, first slice): a real gateway process, a
 * private Dovecot, the SMTP peer and a Web Push service on loopback over
 * HTTPS (test/harness/push-service.ts: it checks the VAPID JWT and decrypts
 * every payload). A handset registers its subscription and logs out; mail
 * APPENDed to its INBOX wakes it once, more mail within the interval goes as
 * one trailing wake-up with the whole count, a 429 is tried again after its
 * Retry-After, the handset comes back and gets every mail exactly once, and
 * a 410 removes the registration (logged on the device). A chat message
 * through a private Prosody wakes another device the same way.
 */
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { NO_SESSION_CONFIRM_MS } from '../../server/transport/mail/inbox-watcher.ts';
import { GatewayError } from '../../device-protocol/errors.ts';
import type { Handset } from '../../device-protocol/handset.ts';
import { eventually } from '../../testing/index.ts';
import type { DovecotServer } from '../harness/dovecot.ts';
import { type Gateway, provisionDevice } from '../harness/gateway.ts';
import type { PushService, PushSubscriptionJson } from '../harness/push-service.ts';
import type { ProsodyServer } from '../harness/prosody.ts';
import type { SmtpPeer } from '../harness/smtp-peer.ts';
import { ADMIN, ApiClient } from './admin-api-helpers.ts';
import { handsetFor, WAIT } from './e2e-suite.ts';
import {
  addSyncedMail,
  asAlice,
  connectKept,
  imLoginBob,
  deliverMail,
  startWakeGateway,
  startWakePeers,
  stopAll,
  stopWakePeers,
  type WakePeers,
  wakeupCount,
} from './push-fixture.ts';

/** The coalescing interval of this gateway: short, so that the trailing wake-up comes within the test. */
const INTERVAL_MS = 4000;

const isCode = (code: string) => (err: unknown) => err instanceof GatewayError && err.code === code;

describe('wake-ups through Web Push', () => {
  let dovecot: DovecotServer;
  let smtp: SmtpPeer;
  let prosody: ProsodyServer;
  let push: PushService;
  let gw: Gateway;
  let dev: { imei: string; secret: string };
  let sub: PushSubscriptionJson;
  let account: string;
  let cursor: string;
  let registration: string;
  let vapidKey: string;
  const open: Handset[] = [];

  const connect = () => connectKept(gw, dev, open);
  const deliver = (subject: string) => deliverMail(dovecot, subject);
  const metric = (result: string) => wakeupCount(gw, 'webpush', result);

  const peers: Partial<WakePeers> = {};
  before(async () => {
    ({ dovecot, smtp, push, prosody } = await startWakePeers(peers));
    gw = await startWakeGateway(push.caFile, INTERVAL_MS);
    dev = await provisionDevice(gw.dataDir);
  });
  after(() =>
    stopAll(
      open,
      () => gw?.stop(),
      () => stopWakePeers(peers),
    ),
  );

  test('push.register: webpush on an allowed endpoint; other kinds, bad keys and private addresses refused', async () => {
    const h = await connect();
    ({ account, cursor } = await addSyncedMail(h, dovecot, smtp));

    vapidKey = await h.pushVapidKey();
    assert.match(vapidKey, /^[A-Za-z0-9_-]{87}$/);
    // Generated on the first start into the data directory, private to the gateway.
    const keyFile = join(gw.dataDir, 'push', 'vapid.json');
    assert.equal(statSync(keyFile).mode & 0o777, 0o600);
    assert.equal(JSON.parse(readFileSync(keyFile, 'utf8')).publicKey, vapidKey);
    sub = push.subscribe();
    await assert.rejects(
      h.request('push.register', { kind: 'fcm', token: 'x' }),
      isCode('push.kind_not_enabled'),
    );
    await assert.rejects(h.request('push.register', { kind: 'carrier-pigeon' }), isCode('request.bad_input'));
    await assert.rejects(
      h.request('push.register', {
        kind: 'webpush',
        endpoint: sub.endpoint,
        keys: { ...sub.keys, p256dh: 'AAAA' },
      }),
      isCode('request.bad_input'),
    );
    await assert.rejects(
      h.request('push.register', {
        kind: 'webpush',
        endpoint: sub.endpoint.replace('https:', 'http:'),
        keys: sub.keys,
      }),
      isCode('request.bad_input'),
    );
    // Loopback is open to this gateway (MMGW_ALLOW_DESTINATIONS, as for every test peer); private and
    // link-local addresses are not.
    for (const endpoint of [
      'https://10.1.2.3/push/x',
      'https://169.254.169.254/latest',
      'https://[fd00::1]/p',
    ]) {
      await assert.rejects(
        h.request('push.register', { kind: 'webpush', endpoint, keys: sub.keys }),
        isCode('policy.destination_not_allowed'),
        endpoint,
      );
    }
    registration = await h.registerPush(sub);
    const again = (await h.request<any>('push.register', { kind: 'webpush', ...sub })).id;
    assert.equal(again, registration, 'the same subscription is one registration');
    const list = await h.listPush();
    assert.deepEqual(
      list.map((r) => [r.id, r.kind, r.endpoint]),
      [[registration, 'webpush', sub.endpoint]],
    );
    const extra = await h.registerPush(push.subscribe());
    assert.equal((await h.listPush()).length, 2);
    await h.unregisterPush(extra);
    assert.deepEqual(
      (await h.listPush()).map((r) => r.id),
      [registration],
    );
    await assert.rejects(h.unregisterPush(extra), isCode('push.not_found'));
    assert.equal(push.received.length, 0, 'nothing is sent while the device has a session');
    await h.close();
  });

  test('mail for a device without a session wakes it once, then coalesced with the count; 429 is retried', async (t) => {
    // The first wake-up is answered 429 once: the gateway tries again after Retry-After.
    push.answer(sub.endpoint, [{ status: 429, retryAfter: '1' }]);
    await deliver('asleep 1');
    await eventually('the first wake-up accepted', () => push.received.some((r) => r.status === 201), WAIT);
    const [refused, first] = push.received;
    assert.equal(refused!.status, 429);
    assert.ok(first!.at - refused!.at >= 1000, 'tried again after Retry-After');
    assert.deepEqual(first!.payload, { kind: 'mail', count: 1, mail: 1, chat: 0, text: 'New message' });
    assert.equal(first!.vapidKey, vapidKey, 'signed with the key the handset was given');
    assert.equal(first!.ttl, 86400);
    assert.equal(first!.urgency, 'normal');
    assert.equal(first!.topic, 'wake');

    await deliver('asleep 2');
    await deliver('asleep 3');
    await eventually('the trailing wake-up', () => push.received.length >= 3, WAIT);
    const trailing = push.received[2]!;
    assert.equal(trailing.status, 201);
    assert.deepEqual(trailing.payload, { kind: 'mail', count: 3, mail: 3, chat: 0, text: '3 new messages' });
    // The interval runs from when the first wake-up went, a little before the push service saw its
    // 429 (encryption, TLS); uncoalesced, mail 2 and 3 would have gone within ~1 s of it.
    assert.ok(trailing.at - refused!.at >= INTERVAL_MS - 1000, 'no second wake-up within the interval');
    assert.equal(await metric('sent'), 2);
    assert.equal(await metric('pruned'), 0);

    // Long after the watcher stopped retrying (it parks on IDLE instead of stopping, since the
    // device can be woken), new mail still wakes the device; after the trailing wake-up's interval,
    // at once (the measured figure is the latency).
    const quietUntil = Math.max(refused!.at + NO_SESSION_CONFIRM_MS, trailing.at + INTERVAL_MS) + 500;
    await sleep(Math.max(0, quietUntil - Date.now()));
    const appendedAt = Date.now();
    await deliver('asleep 4');
    await eventually('a wake-up for mail after the watcher parked', () => push.received.length >= 4, WAIT);
    assert.deepEqual(push.received[3]!.payload, {
      kind: 'mail',
      count: 4,
      mail: 4,
      chat: 0,
      text: '4 new messages',
    });
    assert.equal(await metric('sent'), 3);
    t.diagnostic(`APPEND to wake-up at the push service: ${push.received[3]!.at - appendedAt} ms`);
  });

  test('the handset comes back and gets every mail exactly once', async () => {
    const woken = push.received.length;
    const h = await connect();
    const events: { name: string; body: any }[] = [];
    h.on('event', (e) => events.push({ name: e.name, body: e.body }));
    const sync = await h.request<any>('mail.sync', { account, folder: 'INBOX', limit: 50, cursor });
    assert.deepEqual(sync.items.map((i: any) => i.subject).sort(), [
      'asleep 1',
      'asleep 2',
      'asleep 3',
      'asleep 4',
    ]);
    await deliver('awake 4');
    await eventually(
      'mail.new of the mail after the reconnect',
      () => events.some((e) => e.name === 'mail.new'),
      WAIT,
    );
    assert.deepEqual(
      events.filter((e) => e.name === 'mail.new').map((e) => e.body.header.subject),
      ['awake 4'],
      'nothing missed is pushed again',
    );
    cursor = events.find((e) => e.name === 'mail.new')!.body.cursor;
    assert.equal(push.received.length, woken, 'no wake-up for a device with a session');
    await h.close();
  });

  test('a 410 from the push service removes the registration and logs it on the device', async () => {
    push.answer(sub.endpoint, [410]);
    await deliver('gone 5');
    await eventually('the 410', () => push.received.some((r) => r.status === 410), WAIT);
    await eventually('counted as pruned', async () => (await metric('pruned')) === 1, WAIT);
    const h = await connect();
    assert.deepEqual(await h.listPush(), []);
    const api = await ApiClient.as(gw.adminUrl, ADMIN.name, ADMIN.password);
    await eventually(
      'push_removed in the device log',
      async () => {
        const r = await api.call('GET', `/devices/${dev.imei}/logs`);
        return (r.json?.items ?? []).some((x: any) => x.kind === 'push_removed' && x.code === 'http_410');
      },
      WAIT,
    );
    // Nothing is sent to a removed registration: more mail while away wakes no one.
    const before = push.received.length;
    await h.close();
    await deliver('unheard 6');
    const h2 = await connect();
    const sync = await h2.request<any>('mail.sync', { account, folder: 'INBOX', limit: 50, cursor });
    assert.deepEqual(sync.items.map((i: any) => i.subject).sort(), ['gone 5', 'unheard 6']);
    assert.equal(push.received.length, before);
  });

  test('a chat message for a device without a session wakes it with urgency high; it catches up once', async (t) => {
    const chatDev = await provisionDevice(gw.dataDir);
    const h = handsetFor(gw, chatDev);
    open.push(h);
    await h.connect();
    const online = await imLoginBob(h, prosody);
    const chatSub = push.subscribe();
    await h.registerPush(chatSub);
    await h.close();
    const sentAt = Date.now();
    await asAlice(prosody, 'wake', async (sendBob) => {
      await sendBob('w1', 'wake up, bob');
      await eventually(
        'a wake-up at the chat subscription',
        () => push.received.some((r) => r.endpoint === chatSub.endpoint),
        WAIT,
      );
    });
    const wake = push.received.find((r) => r.endpoint === chatSub.endpoint)!;
    assert.deepEqual(wake.payload, { kind: 'chat', count: 1, mail: 0, chat: 1, text: 'New message' });
    assert.equal(wake.urgency, 'high');
    assert.equal(wake.ttl, 3600);
    t.diagnostic(`chat message to wake-up at the push service: ${wake.at - sentAt} ms`);

    const back = handsetFor(gw, chatDev);
    open.push(back);
    await back.connect();
    const caught = await back.request<any>('im.catchup', { account: online.account });
    assert.deepEqual(
      caught.messages.filter((m: any) => m.direction === 'in').map((m: any) => m.body),
      ['wake up, bob'],
    );
  });
});

/**
 * What a wake-up shows, and channels that expire (issue 14), end to end: a
 * real gateway process, a private Dovecot, the SMTP peer, Prosody and the Web
 * Push service on loopback (test/harness/push-service.ts decrypts every
 * payload); the service profiles and devices set up through the admin REST API.
 *
 * Mail from a sender whose name and subject carry control and bidi
 * characters reaches a sleeping device of a profile with
 * `wakeupPreview: "sender_subject"` as a wake-up naming the sender and the
 * subject, cleaned and cut; the same mail for a device of a profile without
 * the policy wakes it with counts only. A chat message wakes a device of a
 * profile with `"sender"` with the peer's JID.
 *
 * Expiry: channels are registered, the gateway stopped, one record's
 * registration time moved 31 days back in the gateway's lmdb (the time
 * travel a test can afford: the expiry is in days), and the gateway started
 * again with push.expireDays 30: its sweep removes that channel, logs
 * `push_removed` with code `expired` on the device and counts it, and keeps
 * the other.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Handset } from '../../device-protocol/handset.ts';
import { TransportStorage } from '../../server/transport/kit/transport-storage.ts';
import { PushRegistrations } from '../../server/transport/push/registrations.ts';
import { eventually } from '../../testing/index.ts';
import type { Gateway } from '../harness/gateway.ts';
import { ADMIN, ApiClient, addProfiledDevice } from './admin-api-helpers.ts';
import { WAIT } from './e2e-suite.ts';
import { ALICE, BOB, mailAccountBody } from './mail-fixture.ts';
import * as wake from './push-fixture.ts';

type Dev = { imei: string; secret: string };
const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
const TAIL = 'x'.repeat(200);
/** A sender's name and subject as a hostile sender writes them (MIME encoded words carry any bytes). */
const HOSTILE_MAIL = [
  `From: =?UTF-8?B?${b64('Alice \u202eExample\u0007')}?= <alice.sender@example.test>`,
  `Subject: =?UTF-8?B?${b64(`Lunch\tat\u0001 noon ${TAIL}`)}?=`,
  '',
  'see you',
  '',
].join('\r\n');

describe('wake-up previews by service profile, and expiry of unused channels', () => {
  const peers: Partial<wake.WakePeers> = {};
  let gw: Gateway;
  let api: ApiClient;
  let dataDir: string;
  const devs: Record<'shows' | 'hides' | 'chatty', Dev> = {} as never;
  const open: Handset[] = [];
  const endpoints = new Map<Dev, string>();

  const wakesOf = (dev: Dev) => peers.push!.received.filter((r) => r.endpoint === endpoints.get(dev));
  const startGw = () =>
    wake.startWakeGateway(peers.push!.caFile, 1000, [], { dataDir, env: { MMGW_PUSH_EXPIRE_DAYS: '30' } });
  /** A new Web Push channel of the handset, its endpoint kept as `dev`'s. */
  const subscribe = async (h: Handset, dev: Dev) => {
    const sub = peers.push!.subscribe();
    endpoints.set(dev, sub.endpoint);
    return h.registerPush(sub);
  };
  /** A handset of `dev` with a Web Push channel, `user`'s INBOX synced (watched from then on), then gone. */
  const registeredAway = async (dev: Dev, user: typeof ALICE) => {
    const { dovecot, smtp } = peers as wake.WakePeers;
    const h = await wake.connectKept(gw, dev, open);
    const { account } = await h.request<any>('mail.account.add', mailAccountBody(dovecot, smtp, user));
    await h.request('mail.sync', { account, folder: 'INBOX', limit: 50 });
    await subscribe(h, dev);
    await h.close();
  };

  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'mmgw-preview-'));
    await wake.startWakePeers(peers, [ALICE, BOB]);
    gw = await startGw();
    api = await ApiClient.as(gw.adminUrl, ADMIN.name, ADMIN.password);
    assert.equal((await api.call('POST', '/operators', { id: 'op1', name: 'Operator 1' })).status, 201);
    await wake.addWakeProfiles(api, {
      shows: { wakeupPreview: 'sender_subject' },
      names: { wakeupPreview: 'sender' },
      hides: {},
    });
    const bad = await api.call('POST', '/service-profiles', {
      id: 'bad',
      name: 'bad',
      services: ['mail'],
      accounts: [],
      policies: { imageQuality: 80, wakeupPreview: 'everything' },
    });
    assert.equal(bad.status, 400, 'an unknown preview policy is refused');
    devs.shows = await addProfiledDevice(api, 'op1', 'shows');
    devs.hides = await addProfiledDevice(api, 'op1', 'hides');
    devs.chatty = await addProfiledDevice(api, 'op1', 'names');
  });
  after(async () => {
    await wake.stopAll(
      open,
      () => gw?.stop(),
      () => wake.stopWakePeers(peers),
    );
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  test('sender and subject, cleaned and cut, only where the profile allows them', async () => {
    const { shows, hides } = devs;
    await registeredAway(shows, ALICE);
    await registeredAway(hides, BOB);
    await peers.dovecot!.appendMessage(ALICE.user, 'INBOX', HOSTILE_MAIL);
    await peers.dovecot!.appendMessage(BOB.user, 'INBOX', HOSTILE_MAIL);
    await eventually('both wake-ups', () => wakesOf(shows).length > 0 && wakesOf(hides).length > 0, WAIT);
    assert.deepEqual(wakesOf(shows)[0]!.payload, {
      kind: 'mail',
      count: 1,
      mail: 1,
      chat: 0,
      text: 'New message',
      from: 'Alice Example',
      // 120 code points: the cut keeps 119 and marks it.
      subject: `Lunch at noon ${'x'.repeat(105)}…`,
    });
    assert.deepEqual(wakesOf(hides)[0]!.payload, {
      kind: 'mail',
      count: 1,
      mail: 1,
      chat: 0,
      text: 'New message',
    });
  });

  test('a chat message wakes a device of a sender profile with the peer’s JID, no more', async () => {
    const { chatty } = devs;
    const prosody = peers.prosody!;
    const h = await wake.connectKept(gw, chatty, open);
    await wake.imLoginBob(h, prosody);
    await subscribe(h, chatty);
    await h.close();
    await wake.asAlice(prosody, 'phone', async (sendBob) => {
      await sendBob('p1', 'secret words');
      await eventually('the chat wake-up', () => wakesOf(chatty).length > 0, WAIT);
    });
    assert.deepEqual(wakesOf(chatty)[0]!.payload, {
      kind: 'chat',
      count: 1,
      mail: 0,
      chat: 1,
      text: 'New message',
      from: prosody.jid('alice'),
    });
  });

  test('a channel unused for push.expireDays is removed by the sweep, logged and counted; a fresh one stays', async () => {
    const { shows } = devs;
    const h = await wake.connectKept(gw, shows, open);
    const fresh = await h.registerPush(peers.push!.subscribe());
    const [stale] = (await h.listPush()).map((r) => r.id).filter((id) => id !== fresh);
    assert.ok(stale, 'the channel of the first test');
    // Nothing to wake it for after the restart (a sleeping device's INBOX watcher comes back at
    // start, and a wake-up through the stale channel would count as its use).
    for (const { account } of (await h.request<any>('mail.accounts', {})).accounts) {
      await h.request('mail.account.remove', { account });
    }
    await h.close();
    assert.equal(await gw.stop(), 0);

    // The gateway is down: move the stale channel's last registration and use 31 days back.
    const storage = TransportStorage.open(dataDir);
    try {
      const regs = new PushRegistrations(storage);
      const record = regs.get(shows.imei, stale);
      assert.ok(record);
      const longAgo = Date.now() - 31 * 24 * 3600 * 1000;
      await regs.put(shows.imei, stale, { ...record, at: longAgo, usedAt: longAgo });
    } finally {
      await storage.close();
    }

    gw = await startGw();
    api = await ApiClient.as(gw.adminUrl, ADMIN.name, ADMIN.password);
    await eventually(
      'push_removed, code expired, in the device log',
      async () => {
        const r = await api.call('GET', `/devices/${shows.imei}/logs`);
        return (r.json?.items ?? []).some(
          (x: any) => x.kind === 'push_removed' && x.code === 'expired' && x.detail?.registration === stale,
        );
      },
      WAIT,
    );
    assert.equal(await wake.wakeupCount(gw, 'webpush', 'expired'), 1);
    const back = await wake.connectKept(gw, shows, open);
    assert.deepEqual(
      (await back.listPush()).map((r) => r.id),
      [fresh],
    );
  });
});

/**
 * SMS wake-ups end to end (issue 14): a real gateway process configured with
 * push.sms towards the loopback SMSC (test/harness/smsc.ts, the smpp
 * package's server), a Web Push service on loopback, a private Dovecot; the
 * service profiles and devices set up through the admin REST API.
 *
 * A device whose profile does not allow SMS cannot register an sms channel.
 * A device with only an sms channel that goes away gets one SMS with the
 * placeholder text when mail reaches its INBOX. A device with Web Push and
 * SMS gets no SMS while its Web Push goes through, and one when the push
 * service answers 503 past the retries. Past the per-device hourly limit no
 * SMS goes: counted failed. Counted per channel in /metrics.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { GatewayError } from '../../device-protocol/errors.ts';
import type { Handset } from '../../device-protocol/handset.ts';
import { eventually } from '../../testing/index.ts';
import { type DovecotServer, startDovecot } from '../harness/dovecot.ts';
import type { Gateway } from '../harness/gateway.ts';
import { type PushService, type PushSubscriptionJson, startPushService } from '../harness/push-service.ts';
import { type SmtpPeer, startSmtpPeer } from '../harness/smtp-peer.ts';
import { type Smsc, startSmsc } from '../harness/smsc.ts';
import { ADMIN, ApiClient, addProfiledDevice } from './admin-api-helpers.ts';
import { WAIT } from './e2e-suite.ts';
import { ALICE, BOB, mailAccountBody } from './mail-fixture.ts';
import { addWakeProfiles, connectKept, startWakeGateway, stopAll, wakeupCount } from './push-fixture.ts';

const SMS_ONLY = '+491701111111';
const BOTH = '+491702222222';
const isCode = (code: string) => (err: unknown) => err instanceof GatewayError && err.code === code;

describe('wake-ups by SMS, the last resort', () => {
  let dovecot: DovecotServer;
  let smtp: SmtpPeer;
  let push: PushService;
  let smsc: Smsc;
  let gw: Gateway;
  let api: ApiClient;
  let plain: { imei: string; secret: string };
  let texter: { imei: string; secret: string };
  let both: { imei: string; secret: string };
  let sub: PushSubscriptionJson;
  const open: Handset[] = [];

  const metric = (channel: string, result: string) => wakeupCount(gw, channel, result);
  const mailTo = (user: string, subject: string) =>
    dovecot.appendMessage(user, 'INBOX', `Subject: ${subject}\r\nFrom: a@example.test\r\n\r\nwake\r\n`);
  const smsTo = (msisdn: string) => smsc.received.filter((r) => r.to === msisdn.slice(1));
  const addDevice = (profile: string) => addProfiledDevice(api, 'op1', profile);
  /** A handset of `dev` with `user`'s mail account synced (its INBOX watched from then on). */
  const withMail = async (dev: { imei: string; secret: string }, user: typeof ALICE) => {
    const h = await connectKept(gw, dev, open);
    const account = ((await h.request<any>('mail.account.add', mailAccountBody(dovecot, smtp, user))) as any)
      .account as string;
    await h.request('mail.sync', { account, folder: 'INBOX', limit: 50 });
    return h;
  };

  before(async () => {
    dovecot = await startDovecot({ users: [ALICE, BOB] });
    smtp = await startSmtpPeer({ dovecot });
    push = await startPushService();
    smsc = await startSmsc();
    gw = await startWakeGateway(push.caFile, 1000, ['--config', await configFile()]);
    api = await ApiClient.as(gw.adminUrl, ADMIN.name, ADMIN.password);
    assert.equal((await api.call('POST', '/operators', { id: 'op1', name: 'Operator 1' })).status, 201);
    await addWakeProfiles(api, { texts: { smsWakeups: true }, 'no-texts': {} });
    plain = await addDevice('no-texts');
    texter = await addDevice('texts');
    both = await addDevice('texts');
  });
  after(() =>
    stopAll(
      open,
      () => gw?.stop(),
      () => smsc?.stop(),
      () => push?.stop(),
      () => smtp?.stop(),
      () => dovecot?.stop({ removeDir: true }),
    ),
  );

  async function configFile(): Promise<string> {
    const file = join(dovecot.dir, 'mmgw-sms.json');
    const sms = {
      host: smsc.host,
      port: smsc.port,
      systemId: smsc.systemId,
      password: smsc.password,
      sourceAddress: 'Mmgw',
      perDevicePerHour: 2,
    };
    writeFileSync(file, JSON.stringify({ push: { sms } }));
    return file;
  }

  test('push.register kind sms: only where the profile allows it; the number must be E.164', async () => {
    const p = await connectKept(gw, plain, open);
    await assert.rejects(p.registerPush({ kind: 'sms', msisdn: SMS_ONLY }), isCode('push.kind_not_enabled'));
    await p.close();
    const h = await withMail(texter, ALICE);
    await assert.rejects(h.registerPush({ kind: 'sms', msisdn: '01701111111' }), isCode('request.bad_input'));
    const id = await h.registerPush({ kind: 'sms', msisdn: SMS_ONLY });
    assert.deepEqual(
      (await h.listPush()).map(({ at: _at, ...r }) => r),
      [{ id, kind: 'sms', msisdn: SMS_ONLY }],
    );
    await h.close();
  });

  test('a device with only an SMS channel: mail while it is away sends one SMS with the placeholder text', async (t) => {
    const appendedAt = Date.now();
    await mailTo(ALICE.user, 'asleep');
    await eventually('an SMS at the SMSC', () => smsTo(SMS_ONLY).length > 0, WAIT);
    const [sms] = smsTo(SMS_ONLY);
    assert.equal(sms!.text, 'New message');
    assert.equal(sms!.from, 'Mmgw');
    assert.equal(sms!.status, 0);
    assert.equal(await metric('sms', 'sent'), 1);
    assert.deepEqual(
      smsc.binds.map((b) => b.ok),
      [true],
      'one bind',
    );
    t.diagnostic(`APPEND to submit_sm at the SMSC (bind included): ${sms!.at - appendedAt} ms`);
  });

  test('Web Push and SMS: no SMS while the Web Push goes through; one when the push service keeps failing', async () => {
    const h = await withMail(both, BOB);
    sub = push.subscribe();
    await h.registerPush(sub);
    await h.registerPush({ kind: 'sms', msisdn: BOTH });
    await h.close();
    await mailTo(BOB.user, 'pushed');
    await eventually('the web push', async () => (await metric('webpush', 'sent')) === 1, WAIT);
    // The SMS would follow the Web Push at once; give it the time a bind and a submit take here.
    await sleep(1000);
    assert.equal(smsTo(BOTH).length, 0, 'no SMS when a push went through');
    push.answer(sub.endpoint, [503, 503, 503]);
    await mailTo(BOB.user, 'push service down');
    await eventually('an SMS after the failed push', () => smsTo(BOTH).length === 1, WAIT);
    assert.equal(await metric('webpush', 'failed'), 1);
    // The count runs until the device comes back: both mails wait.
    assert.equal(smsTo(BOTH)[0]!.text, '2 new messages');
    assert.deepEqual(
      push.received.filter((r) => r.endpoint === sub.endpoint).map((r) => r.status),
      [201, 503, 503, 503],
      'the push was tried three times first',
    );
    await eventually('counted', async () => (await metric('sms', 'sent')) === 2, WAIT);
  });

  test('past the hourly limit of the device (2 here) a wake-up sends no SMS and is counted failed', async () => {
    assert.equal(smsTo(SMS_ONLY).length, 1);
    await mailTo(ALICE.user, 'second');
    await eventually('the second SMS', () => smsTo(SMS_ONLY).length === 2, WAIT);
    assert.equal(smsTo(SMS_ONLY)[1]!.text, '2 new messages');
    await mailTo(ALICE.user, 'third');
    await eventually(
      'the third refused by the limit',
      async () => (await metric('sms', 'failed')) === 1,
      WAIT,
    );
    assert.equal(smsTo(SMS_ONLY).length, 2);
  });
});

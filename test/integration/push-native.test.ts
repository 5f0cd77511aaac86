/**
 * FCM and APNs wake-ups end to end: a real gateway process configured with
 * the local FCM service (test/harness/fcm-service.ts: OAuth2 token endpoint,
 * messages:send) and the local APNs service (test/harness/apns-service.ts:
 * HTTP/2, ES256 provider tokens), both over TLS with one test CA, and a
 * private Dovecot. A handset registers an FCM and an APNs channel and logs
 * out; mail APPENDed to its INBOX reaches each service as one wake-up; when
 * both services call their token gone, the next mail removes both channels
 * (gone from push.list, logged on the device), counted per channel, in
 * /metrics and in the usage report.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { GatewayError } from '../../device-protocol/errors.ts';
import type { Handset } from '../../device-protocol/handset.ts';
import { eventually } from '../../testing/index.ts';
import { makeTestCa, type TestCa } from '../../testing/test-ca.ts';
import { type ApnsService, startApnsService } from '../harness/apns-service.ts';
import { type DovecotServer, startDovecot } from '../harness/dovecot.ts';
import { type FcmService, startFcmService } from '../harness/fcm-service.ts';
import { type Gateway, provisionDevice } from '../harness/gateway.ts';
import { type SmtpPeer, startSmtpPeer } from '../harness/smtp-peer.ts';
import { ADMIN, ApiClient } from './admin-api-helpers.ts';
import { WAIT } from './e2e-suite.ts';
import { BOB } from './mail-fixture.ts';
import {
  addSyncedMail,
  connectKept,
  deliverMail,
  startWakeGateway,
  stopAll,
  wakeupCount,
} from './push-fixture.ts';

const TOPIC = 'com.example.mmgw';
const isCode = (code: string) => (err: unknown) => err instanceof GatewayError && err.code === code;

describe('wake-ups through FCM and APNs', () => {
  let ca: TestCa;
  let dovecot: DovecotServer;
  let smtp: SmtpPeer;
  let fcm: FcmService;
  let apns: ApnsService;
  let gw: Gateway;
  let dev: { imei: string; secret: string };
  let fcmToken: string;
  let apnsToken: string;
  let account: string;
  let cursor: string;
  const open: Handset[] = [];

  const connect = () => connectKept(gw, dev, open);
  const deliver = (subject: string) => deliverMail(dovecot, subject);
  const metric = (channel: string, result: string) => wakeupCount(gw, channel, result);

  before(async () => {
    ca = makeTestCa('mmgw test native push CA');
    dovecot = await startDovecot({ users: [BOB] });
    smtp = await startSmtpPeer({ dovecot });
    fcm = await startFcmService({ ca });
    apns = await startApnsService({ ca });
    const configFile = join(ca.dir, 'mmgw.json');
    writeFileSync(
      configFile,
      JSON.stringify({
        push: {
          fcm: { serviceAccountFile: fcm.serviceAccountFile, endpoint: fcm.origin },
          apns: { keyId: apns.keyId, teamId: apns.teamId, keyFile: apns.keyFile, host: apns.origin },
        },
      }),
    );
    gw = await startWakeGateway(ca.cert, 2000, ['--config', configFile]);
    dev = await provisionDevice(gw.dataDir);
  });
  after(async () => {
    await stopAll(
      open,
      () => gw?.stop(),
      () => apns?.stop(),
      () => fcm?.stop(),
      () => smtp?.stop(),
      () => dovecot?.stop({ removeDir: true }),
    );
    ca?.remove();
  });

  test('push.register: fcm and apns where configured, tokens checked; sms still not enabled', async () => {
    const h = await connect();
    ({ account, cursor } = await addSyncedMail(h, dovecot, smtp));
    fcmToken = fcm.issueToken();
    apnsToken = apns.issueToken(TOPIC);
    const bad: Record<string, string>[] = [
      { kind: 'fcm', token: 'has a space' },
      { kind: 'fcm', token: 'x'.repeat(4097) },
      { kind: 'fcm' },
      { kind: 'apns', token: 'abc', topic: TOPIC },
      { kind: 'apns', token: apnsToken },
      { kind: 'apns', token: apnsToken, topic: 'not a bundle id' },
    ];
    for (const body of bad) {
      await assert.rejects(
        h.request('push.register', body),
        isCode('request.bad_input'),
        JSON.stringify(body),
      );
    }
    await assert.rejects(
      h.request('push.register', { kind: 'sms', msisdn: '+491701234567' }),
      isCode('push.kind_not_enabled'),
    );
    const f = await h.registerPush({ kind: 'fcm', token: fcmToken });
    const a = await h.registerPush({ kind: 'apns', token: apnsToken.toUpperCase(), topic: TOPIC });
    assert.equal(
      await h.registerPush({ kind: 'apns', token: apnsToken, topic: TOPIC }),
      a,
      'hex in any case is one token',
    );
    assert.equal(await h.registerPush({ kind: 'fcm', token: fcmToken }), f);
    const listed = await h.listPush();
    assert.deepEqual(
      listed.map(({ at: _at, ...r }) => r).sort((x, y) => x.kind.localeCompare(y.kind)),
      [
        { id: a, kind: 'apns', token: apnsToken, topic: TOPIC },
        { id: f, kind: 'fcm', token: fcmToken },
      ],
    );
    assert.equal(
      fcm.received.length + apns.received.length,
      0,
      'nothing is sent while the device has a session',
    );
    await h.close();
  });

  test('mail for a device without a session: one wake-up at each service', async (t) => {
    const appendedAt = Date.now();
    await deliver('asleep 1');
    await eventually(
      'a wake-up at FCM and at APNs',
      () => fcm.received.some((r) => r.status === 200) && apns.received.some((r) => r.status === 200),
      WAIT,
    );
    const [toFcm] = fcm.received;
    assert.equal(fcm.received.length, 1);
    assert.equal(toFcm!.token, fcmToken);
    assert.deepEqual(toFcm!.data, { kind: 'mail', count: '1', mail: '1', chat: '0', text: 'New message' });
    assert.deepEqual(toFcm!.android, { priority: 'NORMAL', ttl: '86400s', collapse_key: 'wake' });
    const [toApns] = apns.received;
    assert.equal(apns.received.length, 1);
    assert.equal(toApns!.token, apnsToken);
    assert.equal(toApns!.topic, TOPIC);
    assert.equal(toApns!.pushType, 'background');
    assert.deepEqual(toApns!.payload.wake, { kind: 'mail', count: 1, mail: 1, chat: 0, text: 'New message' });
    assert.equal(fcm.tokenGrants.issued, 1);
    assert.equal(await metric('fcm', 'sent'), 1);
    assert.equal(await metric('apns', 'sent'), 1);
    t.diagnostic(`APPEND to wake-up: FCM ${toFcm!.at - appendedAt} ms, APNs ${toApns!.at - appendedAt} ms`);
  });

  test('tokens the services call gone are removed at the next wake-up, logged on the device', async () => {
    // The device comes back (its count starts again) and leaves; meanwhile its app was uninstalled.
    const h = await connect();
    const sync = await h.request<any>('mail.sync', { account, folder: 'INBOX', limit: 50, cursor });
    assert.deepEqual(
      sync.items.map((i: any) => i.subject),
      ['asleep 1'],
    );
    await h.close();
    fcm.unregister(fcmToken);
    apns.unregister(apnsToken);
    await deliver('uninstalled 2');
    await eventually(
      'both counted pruned',
      async () => (await metric('fcm', 'pruned')) === 1 && (await metric('apns', 'pruned')) === 1,
      WAIT,
    );
    assert.equal(fcm.received.at(-1)!.error, 'UNREGISTERED');
    assert.equal(apns.received.at(-1)!.reason, 'Unregistered');
    const back = await connect();
    assert.deepEqual(await back.listPush(), []);
    const api = await ApiClient.as(gw.adminUrl, ADMIN.name, ADMIN.password);
    await eventually(
      'push_removed of both in the device log',
      async () => {
        const r = await api.call('GET', `/devices/${dev.imei}/logs`);
        const codes = (r.json?.items ?? [])
          .filter((x: any) => x.kind === 'push_removed')
          .map((x: any) => x.code);
        return codes.includes('fcm_unregistered') && codes.includes('apns_Unregistered');
      },
      WAIT,
    );
  });

  test('the usage report has them per channel, from the records of the transport', async () => {
    const api = await ApiClient.as(gw.adminUrl, ADMIN.name, ADMIN.password);
    let wakeups: any[] = [];
    await eventually(
      'the sent and pruned wake-ups of both channels in the report',
      async () => {
        wakeups = (await api.call('GET', '/reports/usage')).json?.wakeups ?? [];
        return wakeups.filter((w) => w.sent === 1 && w.pruned === 1).length === 2;
      },
      WAIT,
    );
    for (const channel of ['apns', 'fcm']) {
      const w = wakeups.find((x) => x.channel === channel);
      assert.equal(w.failed, 0, channel);
      assert.ok(w.latency.meanSeconds >= 0 && w.latency.meanSeconds <= w.latency.p99Seconds, channel);
      assert.equal(w.latency.p50Seconds, w.latency.p99Seconds, 'one sent: one bucket');
    }
    assert.deepEqual(
      wakeups.map((w) => w.channel),
      ['apns', 'fcm'],
      'no channel without wake-ups',
    );
    const xml = await api.call('GET', '/reports/usage?format=xml');
    assert.match(xml.text, /<channel kind="fcm" sent="1" failed="0" pruned="1" meanSeconds="[\d.]+"/);
  });
});

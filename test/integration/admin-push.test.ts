/**
 * A device's wake-up channels in the admin API (issue 14), through a real
 * gateway process: a handset registers a Web Push subscription of the local
 * push service, an FCM token, an APNs token and a phone number (the local FCM
 * and APNs services and SMSC configured, so that each kind is taken); the
 * admin API lists them redacted (asked of the device's transport over the
 * bus), an operator removes one (audited, gone from the handset's push.list
 * too); a viewer, who reads reports and not devices, neither reads nor removes them.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Handset } from '../../device-protocol/handset.ts';
import { makeTestCa, type TestCa } from '../../testing/test-ca.ts';
import { type ApnsService, startApnsService } from '../harness/apns-service.ts';
import { type FcmService, startFcmService } from '../harness/fcm-service.ts';
import type { Gateway } from '../harness/gateway.ts';
import { type PushService, type PushSubscriptionJson, startPushService } from '../harness/push-service.ts';
import { type Smsc, startSmsc } from '../harness/smsc.ts';
import { ADMIN, ApiClient, addProfiledDevice, assertError } from './admin-api-helpers.ts';
import { connectKept, startWakeGateway, stopAll } from './push-fixture.ts';

const TOPIC = 'com.example.mmgw';
const MSISDN = '+491701234567';

describe('admin API: a device’s wake-up channels', () => {
  let ca: TestCa;
  let push: PushService;
  let fcm: FcmService;
  let apns: ApnsService;
  let smsc: Smsc;
  let gw: Gateway;
  let admin: ApiClient;
  let operator: ApiClient;
  let viewer: ApiClient;
  let dev: { imei: string; secret: string };
  let sub: PushSubscriptionJson;
  let fcmToken: string;
  let apnsToken: string;
  const ids: Record<string, string> = {};
  const open: Handset[] = [];

  before(async () => {
    ca = makeTestCa('mmgw test admin push CA');
    push = await startPushService();
    fcm = await startFcmService({ ca });
    apns = await startApnsService({ ca });
    smsc = await startSmsc();
    // One trust file for the gateway: the Web Push service's CA and the one of FCM and APNs.
    const trust = join(ca.dir, 'trust.pem');
    writeFileSync(trust, `${readFileSync(push.caFile, 'utf8')}\n${readFileSync(ca.cert, 'utf8')}`);
    const config = join(ca.dir, 'mmgw.json');
    writeFileSync(
      config,
      JSON.stringify({
        push: {
          fcm: { serviceAccountFile: fcm.serviceAccountFile, endpoint: fcm.origin },
          apns: { keyId: apns.keyId, teamId: apns.teamId, keyFile: apns.keyFile, host: apns.origin },
          sms: {
            host: smsc.host,
            port: smsc.port,
            systemId: smsc.systemId,
            password: smsc.password,
            sourceAddress: 'Mmgw',
          },
        },
      }),
    );
    gw = await startWakeGateway(trust, 60_000, ['--config', config]);
    admin = await ApiClient.as(gw.adminUrl, ADMIN.name, ADMIN.password);
    for (const [name, role] of [
      ['ops1', 'operator'],
      ['view1', 'viewer'],
    ]) {
      const r = await admin.call('POST', '/users', { name, role, password: `${name}-password-long` });
      assert.equal(r.status, 201, r.text);
    }
    operator = await ApiClient.as(gw.adminUrl, 'ops1', 'ops1-password-long');
    viewer = await ApiClient.as(gw.adminUrl, 'view1', 'view1-password-long');
    assert.equal((await admin.call('POST', '/operators', { id: 'op1', name: 'Operator 1' })).status, 201);
    const profile = await admin.call('POST', '/service-profiles', {
      id: 'texts',
      name: 'texts',
      services: ['mail', 'im'],
      accounts: [],
      policies: { maxAttachmentBytes: 0, bodyTruncateBytes: 0, imageQuality: 80, smsWakeups: true },
    });
    assert.equal(profile.status, 201, profile.text);
    dev = await addProfiledDevice(admin, 'op1', 'texts');
  });
  after(async () => {
    await stopAll(
      open,
      () => gw?.stop(),
      () => smsc?.stop(),
      () => apns?.stop(),
      () => fcm?.stop(),
      () => push?.stop(),
    );
    ca?.remove();
  });

  test('the handset’s four channels are listed redacted: no key, token, path or whole number', async () => {
    const h = await connectKept(gw, dev, open);
    sub = push.subscribe();
    fcmToken = fcm.issueToken();
    apnsToken = apns.issueToken(TOPIC);
    ids.webpush = await h.registerPush(sub);
    ids.fcm = await h.registerPush({ kind: 'fcm', token: fcmToken });
    ids.apns = await h.registerPush({ kind: 'apns', token: apnsToken, topic: TOPIC });
    ids.sms = await h.registerPush({ kind: 'sms', msisdn: MSISDN });
    await h.close();

    const r = await operator.call('GET', `/devices/${dev.imei}/wakeup-channels`);
    assert.equal(r.status, 200, r.text);
    const byKind = Object.fromEntries(r.json.items.map((c: any) => [c.kind, c]));
    assert.deepEqual(Object.keys(byKind).sort(), ['apns', 'fcm', 'sms', 'webpush']);
    for (const [kind, id] of Object.entries(ids)) {
      assert.equal(byKind[kind].id, id, `${kind}: the id the handset was given`);
      assert.equal(typeof byKind[kind].registeredAt, 'number');
    }
    assert.equal(byKind.webpush.channel, new URL(sub.endpoint).origin);
    assert.equal(byKind.fcm.channel, `…${fcmToken.slice(-6)}`);
    assert.equal(byKind.apns.channel, `…${apnsToken.slice(-6)} (${TOPIC})`);
    assert.equal(byKind.sms.channel, '+491*******67');
    const secrets = [
      sub.keys.p256dh,
      sub.keys.auth,
      new URL(sub.endpoint).pathname,
      fcmToken,
      apnsToken,
      MSISDN,
    ];
    for (const s of secrets) assert.ok(!r.text.includes(s), `the answer does not hold ${s}`);
    // The admin sees what the operator sees.
    assert.deepEqual((await admin.call('GET', `/devices/${dev.imei}/wakeup-channels`)).json, r.json);
  });

  test('a viewer neither reads nor removes channels (devices are not theirs to read); bad ids are refused', async () => {
    assertError(await viewer.call('GET', `/devices/${dev.imei}/wakeup-channels`), 403, 'api.forbidden');
    assertError(
      await viewer.call('DELETE', `/devices/${dev.imei}/wakeup-channels/${ids.fcm}`),
      403,
      'api.forbidden',
    );
    assert.equal((await operator.call('GET', `/devices/${dev.imei}/wakeup-channels`)).json.items.length, 4);
    assertError(
      await operator.call('GET', '/devices/490154203237518/wakeup-channels'),
      404,
      'registry.not_found',
    );
    assertError(
      await operator.call('DELETE', `/devices/${dev.imei}/wakeup-channels/fAAAAAAAAAAAAAAAA`),
      404,
      'push.not_found',
      'id',
    );
    assertError(
      await operator.call('DELETE', `/devices/${dev.imei}/wakeup-channels/..%2F..`),
      400,
      'api.bad_input',
      'id',
    );
  });

  test('an operator removes one: audited redacted, gone from the list and from the handset’s push.list', async () => {
    const r = await operator.call('DELETE', `/devices/${dev.imei}/wakeup-channels/${ids.fcm}`);
    assert.equal(r.status, 204, r.text);
    const left = (await operator.call('GET', `/devices/${dev.imei}/wakeup-channels`)).json.items;
    assert.deepEqual(left.map((c: any) => c.kind).sort(), ['apns', 'sms', 'webpush']);
    const h = await connectKept(gw, dev, open);
    assert.deepEqual((await h.listPush()).map((c) => c.id).sort(), [ids.apns, ids.sms, ids.webpush].sort());
    await h.close();
    const audit = await admin.call('GET', '/audit?action=device.wakeup_channel.remove');
    assert.equal(audit.status, 200, audit.text);
    const [entry] = audit.json.items;
    assert.equal(entry.actor, 'ops1');
    assert.equal(entry.target, `device:${dev.imei}/wakeup-channel:${ids.fcm}`);
    assert.deepEqual(entry.before, {
      id: ids.fcm,
      kind: 'fcm',
      registeredAt: entry.before.registeredAt,
      channel: `…${fcmToken.slice(-6)}`,
    });
    assert.ok(!audit.text.includes(fcmToken), 'the audit log does not hold the token');
    assertError(
      await operator.call('DELETE', `/devices/${dev.imei}/wakeup-channels/${ids.fcm}`),
      404,
      'push.not_found',
    );
  });
});

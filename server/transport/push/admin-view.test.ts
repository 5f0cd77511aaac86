import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { GatewayError } from '../../../device-protocol/errors.ts';
import { Subjects } from '../../bus/bus.ts';
import { InProcessBus } from '../../bus/inproc.ts';
import { TransportStorage } from '../kit/transport-storage.ts';
import { maskMsisdn, redactedChannel, servePushAdmin } from './admin-view.ts';
import { channelId, type PushRegistration, PushRegistrations } from './registrations.ts';

const FCM = 'dGVzdA:APA91bHx_y-zFCMtokenEND123';
const APNS = 'ab12'.repeat(15) + 'c0ffee';
const WEB: PushRegistration = {
  kind: 'webpush',
  endpoint: 'https://push.example.net:8443/wpush/v2/secret-path-of-this-phone',
  p256dh: 'BPkeyOfTheUserAgent',
  auth: 'authSecret16',
  at: 3,
};

test('what names a channel is redacted: an origin, a token tail, a masked number; never keys', () => {
  assert.equal(redactedChannel(WEB), 'https://push.example.net:8443');
  assert.equal(redactedChannel({ kind: 'fcm', token: FCM, at: 1 }), '…END123');
  assert.equal(
    redactedChannel({ kind: 'apns', token: APNS, topic: 'com.example.mail', at: 1 }),
    '…c0ffee (com.example.mail)',
  );
  assert.equal(redactedChannel({ kind: 'fcm', token: 'short', at: 1 }), '…', 'a short token shows nothing');
  assert.equal(maskMsisdn('+491701234567'), '+491*******67');
  assert.equal(maskMsisdn('+12345678'), '+123***78');
  assert.equal(redactedChannel({ kind: 'sms', msisdn: '+491701234567', at: 1 }), '+491*******67');
});

test('the admin subject lists a device’s channels redacted, oldest first, and removes one', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mmgw-push-admin-'));
  const storage = TransportStorage.open(dir);
  const bus = new InProcessBus();
  t.after(async () => {
    await bus.close();
    await storage.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const regs = new PushRegistrations(storage);
  const fcm: PushRegistration = { kind: 'fcm', token: FCM, at: 5, usedAt: 9 };
  const sms: PushRegistration = { kind: 'sms', msisdn: '+491701234567', at: 1 };
  for (const r of [fcm, WEB, sms]) await regs.put('dev1', channelId(r), r);
  await regs.put('dev2', channelId(fcm), fcm);
  const sub = servePushAdmin(bus, 'n1', regs);
  t.after(() => sub.unsubscribe());
  const ask = (data: unknown) => bus.request<any>(Subjects.pushAdmin('n1'), data);

  const listed = await ask({ op: 'list', deviceId: 'dev1' });
  assert.deepEqual(listed.items, [
    { id: channelId(sms), kind: 'sms', registeredAt: 1, channel: '+491*******67' },
    { id: channelId(WEB), kind: 'webpush', registeredAt: 3, channel: 'https://push.example.net:8443' },
    { id: channelId(fcm), kind: 'fcm', registeredAt: 5, usedAt: 9, channel: '…END123' },
  ]);
  const text = JSON.stringify(listed);
  for (const secret of [FCM, 'BPkeyOfTheUserAgent', 'authSecret16', 'secret-path', '1701234'])
    assert.ok(!text.includes(secret), `${secret} does not leave the transport`);

  const removed = await ask({ op: 'remove', deviceId: 'dev1', id: channelId(fcm) });
  assert.deepEqual(removed, {
    removed: { id: channelId(fcm), kind: 'fcm', registeredAt: 5, usedAt: 9, channel: '…END123' },
  });
  assert.equal(regs.get('dev1', channelId(fcm)), undefined);
  assert.ok(regs.get('dev2', channelId(fcm)), 'the same token of another device stays');
  const isCode = (code: string) => (err: unknown) => err instanceof GatewayError && err.code === code;
  await assert.rejects(ask({ op: 'remove', deviceId: 'dev1', id: channelId(fcm) }), isCode('push.not_found'));
  await assert.rejects(ask({ op: 'drop', deviceId: 'dev1' }), isCode('request.bad_input'));
  await assert.rejects(ask({ op: 'list', deviceId: 'x'.repeat(65) }), isCode('request.bad_input'));
  assert.deepEqual(await ask({ op: 'list', deviceId: 'nobody' }), { items: [] });
});

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { GatewayError } from '../../../device-protocol/errors.ts';
import { DestinationPolicy } from '../../net/destination-policy.ts';
import { TransportStorage } from '../kit/transport-storage.ts';
import type { MethodContext, MethodDefinition } from '../types.ts';
import { type PushKind, pushMethods } from './methods.ts';
import { PushRegistrations, registrationId } from './registrations.ts';

const dir = mkdtempSync(join(tmpdir(), 'mmgw-push-methods-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const ctx = { deviceId: '356938035643809' } as MethodContext;
const APNS = 'AB'.repeat(32);

function methodsOver(storage: TransportStorage, enabled: PushKind[], smsAllowed = false) {
  const asked: string[] = [];
  const methods = pushMethods({
    registrations: new PushRegistrations(storage),
    enabled: new Set(enabled),
    policy: new DestinationPolicy({ allow: ['127.0.0.1'] }),
    maxPerDevice: 3,
    vapidPublicKey: 'k',
    smsAllowed: async (deviceId) => {
      asked.push(deviceId);
      return smsAllowed;
    },
    now: () => 1000,
  });
  const byName = (name: string) => methods.find((m) => m.method === name) as MethodDefinition<unknown>;
  /** What the transport does with a request: the input schema, then the handler. */
  const call = async (name: string, body: unknown) => {
    const m = byName(name);
    const input = m.input.safeParse(body);
    if (!input.success) throw new GatewayError('request.bad_input');
    return (await m.handle(ctx, input.data)) as any;
  };
  return { call, asked };
}

const isCode = (code: string) => (err: unknown) => err instanceof GatewayError && err.code === code;

test('fcm and apns register only where enabled; malformed tokens are bad input either way', async () => {
  const storage = TransportStorage.open(join(dir, 'a'));
  try {
    const off = methodsOver(storage, ['webpush']);
    await assert.rejects(
      off.call('push.register', { kind: 'fcm', token: 'tok' }),
      isCode('push.kind_not_enabled'),
    );
    await assert.rejects(
      off.call('push.register', { kind: 'apns', token: APNS, topic: 'com.example.app' }),
      isCode('push.kind_not_enabled'),
    );
    const on = methodsOver(storage, ['webpush', 'fcm', 'apns']);
    for (const body of [
      { kind: 'fcm', token: '' },
      { kind: 'fcm', token: 'tab\there' },
      { kind: 'fcm', token: 'é' },
      { kind: 'apns', token: 'a'.repeat(63), topic: 'com.example.app' },
      { kind: 'apns', token: 'g'.repeat(64), topic: 'com.example.app' },
      { kind: 'apns', token: 'a'.repeat(202), topic: 'com.example.app' },
      { kind: 'apns', token: APNS, topic: '../etc' },
    ]) {
      await assert.rejects(on.call('push.register', body), isCode('request.bad_input'), JSON.stringify(body));
    }
    await assert.rejects(
      on.call('push.register', { kind: 'sms', msisdn: '+491701234567' }),
      isCode('push.kind_not_enabled'),
    );
    const f = (await on.call('push.register', { kind: 'fcm', token: 'x'.repeat(4096) })).id;
    const a = (await on.call('push.register', { kind: 'apns', token: APNS, topic: 'com.example.app' })).id;
    assert.deepEqual(
      (await on.call('push.list', {})).registrations,
      [
        { id: a, kind: 'apns', token: APNS.toLowerCase(), topic: 'com.example.app', at: 1000 },
        { id: f, kind: 'fcm', token: 'x'.repeat(4096), at: 1000 },
      ].sort((x, y) => x.id.localeCompare(y.id)),
    );
  } finally {
    await storage.close();
  }
});

test('a version 1 record of the first release lists beside version 2 ones; the limit counts all kinds', async () => {
  const storage = TransportStorage.open(join(dir, 'b'));
  try {
    const endpoint = 'https://127.0.0.1:9/push/old';
    const old = registrationId(endpoint);
    await storage
      .database<unknown, [string, string]>('push.reg')
      .put([ctx.deviceId, old], { v: 1, kind: 'webpush', endpoint, p256dh: 'BPk', auth: 'au', at: 5 });
    const { call } = methodsOver(storage, ['webpush', 'fcm']);
    await call('push.register', { kind: 'fcm', token: 'one' });
    await call('push.register', { kind: 'fcm', token: 'two' });
    const listed = (await call('push.list', {})).registrations;
    assert.deepEqual(
      listed.find((r: any) => r.id === old),
      { id: old, kind: 'webpush', endpoint, at: 5 },
    );
    assert.equal(listed.length, 3);
    await assert.rejects(call('push.register', { kind: 'fcm', token: 'three' }), isCode('push.too_many'));
    await call('push.register', { kind: 'fcm', token: 'two' });
    assert.equal(
      (await call('push.list', {})).registrations.length,
      3,
      'the same token again is the same channel',
    );
  } finally {
    await storage.close();
  }
});

test('sms registers only where configured and the service profile allows it; the number must be E.164', async () => {
  const storage = TransportStorage.open(join(dir, 'c'));
  try {
    const msisdn = '+491701234567';
    const unconfigured = methodsOver(storage, ['webpush'], true);
    await assert.rejects(
      unconfigured.call('push.register', { kind: 'sms', msisdn }),
      isCode('push.kind_not_enabled'),
    );
    const notInProfile = methodsOver(storage, ['webpush', 'sms'], false);
    await assert.rejects(
      notInProfile.call('push.register', { kind: 'sms', msisdn }),
      (err: unknown) =>
        isCode('push.kind_not_enabled')(err) && /service profile/.test((err as Error).message),
    );
    assert.deepEqual(notInProfile.asked, [ctx.deviceId]);
    const on = methodsOver(storage, ['webpush', 'sms'], true);
    for (const bad of [
      '491701234567',
      '+0491701234567',
      '+4917',
      '+49 170 1234567',
      '+4917012345678901',
      5,
    ]) {
      await assert.rejects(
        on.call('push.register', { kind: 'sms', msisdn: bad }),
        isCode('request.bad_input'),
        String(bad),
      );
    }
    const { id } = await on.call('push.register', { kind: 'sms', msisdn });
    assert.match(id, /^s/);
    assert.deepEqual(
      (await on.call('push.register', { kind: 'sms', msisdn })).id,
      id,
      'the same number: one channel',
    );
    assert.deepEqual((await on.call('push.list', {})).registrations, [{ id, kind: 'sms', msisdn, at: 1000 }]);
    assert.equal(notInProfile.asked.length, 1, 'a profile is asked only for sms');
  } finally {
    await storage.close();
  }
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { channelId, readPushRegistration, registrationId } from './registrations.ts';

const V1 = {
  v: 1,
  kind: 'webpush',
  endpoint: 'https://push.example/abc',
  p256dh: 'BPk',
  auth: 'au',
  at: 1700000000000,
};
const APNS_TOKEN = 'ab12'.repeat(16);

test('a version 1 record (Web Push only) reads back without its version; damaged ones read as nothing', () => {
  const { v: _v, ...expected } = V1;
  assert.deepEqual(readPushRegistration(V1), expected);
  assert.equal(readPushRegistration({ ...V1, kind: 'fcm' }), undefined, 'version 1 knew no fcm');
  assert.equal(readPushRegistration({ ...V1, endpoint: 'x'.repeat(2049) }), undefined);
  assert.equal(readPushRegistration({ ...V1, at: 'yesterday' }), undefined);
  assert.equal(readPushRegistration(null), undefined);
  assert.equal(readPushRegistration('webpush'), undefined);
});

test('version 2 reads every kind; a newer version, an unknown kind or a malformed token reads as nothing', () => {
  const { v: _v, ...web } = V1;
  assert.deepEqual(readPushRegistration({ ...V1, v: 2 }), web);
  const fcm = { kind: 'fcm', token: 'dGVzdA:APA91b-x_y', at: 5 };
  assert.deepEqual(readPushRegistration({ v: 2, ...fcm }), fcm);
  const apns = { kind: 'apns', token: APNS_TOKEN, topic: 'com.example.mail', at: 6 };
  assert.deepEqual(readPushRegistration({ v: 2, ...apns }), apns);
  assert.equal(readPushRegistration({ ...V1, v: 3 }), undefined, 'a newer release’s record');
  const sms = { kind: 'sms', msisdn: '+491701234567', at: 7 };
  assert.deepEqual(readPushRegistration({ v: 2, ...sms }), sms);
  for (const msisdn of ['491701234567', '+0491701234567', '+4917', '+4917012345678901', '+49 170 1234567']) {
    assert.equal(readPushRegistration({ v: 2, ...sms, msisdn }), undefined, msisdn);
  }
  assert.equal(readPushRegistration({ v: 1, ...sms }), undefined, 'version 1 knew no sms');
  assert.equal(readPushRegistration({ v: 2, ...fcm, token: 'has space' }), undefined);
  assert.equal(readPushRegistration({ v: 2, ...fcm, token: 'x'.repeat(4097) }), undefined);
  assert.equal(readPushRegistration({ v: 2, ...apns, token: 'abc' }), undefined);
  assert.equal(readPushRegistration({ v: 2, ...apns, topic: 'no-dots' }), undefined);
});

test('the registration id is stable per channel and differs between channels and kinds', () => {
  const a = registrationId('https://push.example/abc');
  assert.match(a, /^w[A-Za-z0-9_-]{16}$/);
  assert.equal(registrationId('https://push.example/abc'), a);
  assert.notEqual(registrationId('https://push.example/abd'), a);
  assert.equal(
    channelId({ kind: 'webpush', endpoint: 'https://push.example/abc', p256dh: '', auth: '', at: 0 }),
    a,
  );
  const f = channelId({ kind: 'fcm', token: 'tok', at: 0 });
  assert.match(f, /^f[A-Za-z0-9_-]{16}$/);
  assert.equal(channelId({ kind: 'fcm', token: 'tok', at: 9 }), f);
  const x = channelId({ kind: 'apns', token: APNS_TOKEN, topic: 'com.example.a', at: 0 });
  assert.match(x, /^a[A-Za-z0-9_-]{16}$/);
  assert.notEqual(channelId({ kind: 'apns', token: APNS_TOKEN, topic: 'com.example.b', at: 0 }), x);
  const s = channelId({ kind: 'sms', msisdn: '+491701234567', at: 0 });
  assert.match(s, /^s[A-Za-z0-9_-]{16}$/);
  assert.equal(channelId({ kind: 'sms', msisdn: '+491701234567', at: 3 }), s);
  assert.notEqual(channelId({ kind: 'sms', msisdn: '+491701234568', at: 0 }), s);
});

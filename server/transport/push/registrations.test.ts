import assert from 'node:assert/strict';
import { test } from 'node:test';
import { readPushRegistration, registrationId } from './registrations.ts';

const V1 = {
  v: 1,
  kind: 'webpush',
  endpoint: 'https://push.example/abc',
  p256dh: 'BPk',
  auth: 'au',
  at: 1700000000000,
};

test('a version 1 record reads back without its version; others and damaged ones read as nothing', () => {
  const { v: _v, ...expected } = V1;
  assert.deepEqual(readPushRegistration(V1), expected);
  assert.equal(readPushRegistration({ ...V1, v: 2 }), undefined, 'a newer release’s record');
  assert.equal(readPushRegistration({ ...V1, kind: 'fcm' }), undefined);
  assert.equal(readPushRegistration({ ...V1, endpoint: 'x'.repeat(2049) }), undefined);
  assert.equal(readPushRegistration({ ...V1, at: 'yesterday' }), undefined);
  assert.equal(readPushRegistration(null), undefined);
  assert.equal(readPushRegistration('webpush'), undefined);
});

test('the registration id is stable per endpoint and differs between endpoints', () => {
  const a = registrationId('https://push.example/abc');
  assert.match(a, /^w[A-Za-z0-9_-]{16}$/);
  assert.equal(registrationId('https://push.example/abc'), a);
  assert.notEqual(registrationId('https://push.example/abd'), a);
});

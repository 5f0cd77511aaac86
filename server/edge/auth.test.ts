import assert from 'node:assert/strict';
import { test } from 'node:test';
import jwt from 'jsonwebtoken';
import {
  DeviceTokens,
  imeiOfSessionId,
  isDeviceId,
  newResumeToken,
  newSessionId,
  sameSecret,
} from './auth.ts';

const SECRET = 'unit-secret-0123456789';

test('tokens: issued with sub, sid and exp; expiry follows the injected clock', () => {
  let now = 1_700_000_000_000;
  const tokens = new DeviceTokens(SECRET, 60, () => now);
  const { token, expiresAt } = tokens.issue('356938035643809', 'sid-1');
  assert.equal(expiresAt, now + 60_000);
  const claims = jwt.decode(token) as jwt.JwtPayload;
  assert.equal(claims.sub, '356938035643809');
  assert.equal(claims.sid, 'sid-1');
  tokens.verify(token, '356938035643809');
  assert.throws(() => tokens.verify(token, '490154203237518'), { code: 'auth.bad_token' });
  now += 61_000;
  assert.throws(() => tokens.verify(token, '356938035643809'), { code: 'auth.token_expired' });
});

test('tokens: other algorithms and keys are bad tokens; a short key is refused', () => {
  const tokens = new DeviceTokens(SECRET, 60, Date.now);
  const exp = Math.floor(Date.now() / 1000) + 60;
  const hs512 = jwt.sign({ sub: 'a', exp }, SECRET, { algorithm: 'HS512' });
  const none = jwt.sign({ sub: 'a', exp }, '', { algorithm: 'none' });
  const noExp = jwt.sign({ sub: 'a' }, SECRET, { algorithm: 'HS256' });
  for (const t of [hs512, none, noExp, 'garbage'])
    assert.throws(() => tokens.verify(t, 'a'), { code: 'auth.bad_token' });
  assert.throws(() => new DeviceTokens('short', 60, Date.now), { code: 'config.invalid' });
});

test('session ids name their device; resume tokens are 128 random bits', () => {
  const id = newSessionId('356938035643809');
  assert.equal(imeiOfSessionId(id), '356938035643809');
  assert.notEqual(newSessionId('356938035643809'), id);
  assert.equal(imeiOfSessionId('no-dot'), undefined);
  assert.equal(imeiOfSessionId('bad imei.x'), undefined);
  assert.equal(imeiOfSessionId(42), undefined);
  assert.equal(Buffer.from(newResumeToken(), 'base64url').length, 16);
  assert.equal(isDeviceId('a.b'), false);
  assert.equal(isDeviceId('mmgw.*'), false);
  assert.equal(sameSecret('abc', 'abc'), true);
  assert.equal(sameSecret('abc', 'abd'), false);
  assert.equal(sameSecret('abc', 'abcd'), false);
});

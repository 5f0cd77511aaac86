import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { test } from 'node:test';
import jwt from 'jsonwebtoken';
import type { Registry } from '../../server/store/registry.ts';
import { bearerPrincipal, TICKET_TTL_SECONDS, TokenIssuer } from './auth.ts';

const KEY = 'k'.repeat(43);

function clock(start = Date.UTC(2026, 0, 1)) {
  let now = start;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

/** A registry that knows one user, bob, in the epoch given. */
function registryWith(epoch: { value: number }): Registry {
  return {
    getAdminAuth: (name: string) =>
      name === 'bob'
        ? { user: { name: 'bob', role: 'operator', createdAt: 0 }, tokenEpoch: epoch.value }
        : undefined,
  } as unknown as Registry;
}

const request = (authorization?: string) =>
  ({ headers: authorization ? { authorization } : {} }) as IncomingMessage;

test('a token stops working once its user changes password or role (the epoch moves on)', () => {
  const c = clock();
  const tokens = new TokenIssuer(KEY, 3600, c.now);
  const epoch = { value: 3 };
  const registry = registryWith(epoch);
  const { token } = tokens.issue({ name: 'bob', role: 'operator' }, 3);
  const url = new URL('http://x/api/v1/devices');
  assert.deepEqual(bearerPrincipal(request(`Bearer ${token}`), url, tokens, registry), {
    name: 'bob',
    role: 'operator',
    epoch: 3,
  });
  epoch.value = 4;
  assert.throws(
    () => bearerPrincipal(request(`Bearer ${token}`), url, tokens, registry),
    (err: { code: string; message: string }) =>
      err.code === 'api.unauthorized' && /password or role change/.test(err.message),
  );
});

test('a token issued before epochs and audiences existed counts as epoch 0', () => {
  const c = clock();
  const tokens = new TokenIssuer(KEY, 3600, c.now);
  const iat = Math.floor(c.now() / 1000);
  const old = jwt.sign({ sub: 'bob', role: 'operator', iat, exp: iat + 60 }, KEY, {
    algorithm: 'HS256',
    issuer: 'mmgw-admin',
    noTimestamp: true,
  });
  assert.deepEqual(tokens.verify(old), { name: 'bob', epoch: 0 });
});

test('no token in a URL: access_token is never read, a ticket only on a stream path', () => {
  const tokens = new TokenIssuer(KEY, 3600);
  const registry = registryWith({ value: 0 });
  const { token } = tokens.issue({ name: 'bob', role: 'operator' }, 0);
  assert.throws(
    () => bearerPrincipal(request(), new URL(`http://x/a?access_token=${token}`), tokens, registry),
    /Authorization: Bearer/,
  );
  const { ticket } = tokens.issueTicket('bob', 0, '/nodes/stream');
  assert.throws(
    () => bearerPrincipal(request(), new URL(`http://x/a?ticket=${ticket}`), tokens, registry),
    /Authorization: Bearer/,
    'a route that is no stream reads no ticket',
  );
  assert.equal(
    bearerPrincipal(request(), new URL(`http://x/a?ticket=${ticket}`), tokens, registry, {
      ticketPath: '/nodes/stream',
    }).name,
    'bob',
  );
});

test('a stream ticket: one use, its own path, 30 s, and never a login token (nor the other way round)', () => {
  const c = clock();
  const tokens = new TokenIssuer(KEY, 3600, c.now);
  const path = '/devices/490154203237518/logs/stream';
  const first = tokens.issueTicket('bob', 2, path);
  assert.equal(first.expiresAt, c.now() + TICKET_TTL_SECONDS * 1000);
  assert.throws(() => tokens.redeemTicket(first.ticket, '/nodes/stream'), /another stream/);
  assert.deepEqual(tokens.redeemTicket(first.ticket, path), { name: 'bob', epoch: 2 });
  assert.throws(() => tokens.redeemTicket(first.ticket, path), /used already/);
  const late = tokens.issueTicket('bob', 2, path);
  c.advance((TICKET_TTL_SECONDS + 1) * 1000);
  assert.throws(
    () => tokens.redeemTicket(late.ticket, path),
    (err: { code: string }) => err.code === 'auth.token_expired',
  );
  const fresh = tokens.issueTicket('bob', 2, path);
  assert.throws(() => tokens.verify(fresh.ticket), /not a login token/);
  const { token } = tokens.issue({ name: 'bob', role: 'operator' }, 2);
  assert.throws(() => tokens.redeemTicket(token, path), /not a stream ticket/);
});

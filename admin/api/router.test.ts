import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import { z } from 'zod';
import { ERROR_CODES, GatewayError } from '../../device-protocol/errors.ts';
import type { Principal } from './auth.ts';
import { sendJson } from './http-util.ts';
import { createRouter, type Route, routeFor } from './router.ts';

/** What the handlers see of the services: a log of what ran, to check the order of steps. */
interface Services {
  steps: string[];
}
const route = routeFor<Services>();

/** Tokens are the role names; anything else is refused as a bad token. A stream's ticket is `t:<its path>`. */
function authenticate(
  req: { headers: Record<string, unknown> },
  url?: URL,
  o: { ticketPath?: string } = {},
): Principal {
  const token = String(req.headers.authorization ?? '').replace(/^Bearer /, '');
  if (token === 'admin' || token === 'operator' || token === 'viewer')
    return { name: `${token}-user`, role: token };
  if (o.ticketPath !== undefined && url?.searchParams.get('ticket') === `t:${o.ticketPath}`)
    return { name: 'ticket-user', role: 'viewer' };
  throw new GatewayError('api.unauthorized', 'no token');
}

const routes: Route<Services>[] = [
  // Listed before the literal route it shadows: the literal must still win.
  route({
    method: 'GET',
    path: '/things/{id}',
    roles: ['admin', 'operator'],
    summary: 'one thing',
    responses: {},
    params: { id: 'Thing id' },
    handle: ({ res, params }) => sendJson(res, 200, { id: params.id }),
  }),
  route({
    method: 'GET',
    path: '/things/latest.csv',
    roles: ['admin', 'operator'],
    summary: 'the latest',
    responses: {},
    handle: ({ res }) => sendJson(res, 200, { latest: true }),
  }),
  route({
    method: 'GET',
    path: '/things',
    roles: ['admin', 'operator', 'viewer'],
    summary: 'list',
    responses: {},
    query: z.object({ limit: z.coerce.number().int().min(1).default(10) }).strict(),
    handle: ({ res, query }) => sendJson(res, 200, { limit: query.limit }),
  }),
  route({
    method: 'POST',
    path: '/things',
    roles: ['admin'],
    summary: 'create',
    responses: {},
    body: z.object({ name: z.string().min(1) }).strict(),
    handle: ({ res, body, user, services }) => {
      services.steps.push('handle');
      sendJson(res, 201, { name: body.name, by: user.name });
    },
  }),
  route({
    method: 'PUT',
    path: '/things/{id}/parts/{part}',
    roles: ['admin', 'operator'],
    summary: 'set a part',
    responses: {},
    params: {
      id: { description: 'Thing id', schema: z.string().regex(/^t\d+$/, { error: 'tN' }) },
      part: 'Part',
    },
    body: z.object({ size: z.number().optional() }).strict(),
    bodyOptional: true,
    guard: ({ params, user, services }) => {
      services.steps.push('guard');
      if (params.part === 'locked' && user.role !== 'admin')
        throw new GatewayError('api.forbidden', 'locked');
    },
    handle: ({ res, params, body }) => sendJson(res, 200, { ...params, size: body.size ?? null }),
  }),
  route({
    method: 'GET',
    path: '/open',
    roles: 'public',
    summary: 'no token needed',
    responses: {},
    handle: ({ res, user }) => sendJson(res, 200, { user: user.name }),
  }),
  route({
    method: 'GET',
    path: '/things/{id}/feed',
    roles: ['viewer'],
    summary: 'a stream',
    responses: {},
    params: { id: 'Thing id' },
    ticket: true,
    query: z.object({ kind: z.string().optional() }).strict(),
    handle: ({ res, user, query }) => sendJson(res, 200, { user: user.name, kind: query.kind ?? null }),
  }),
  route({
    method: 'POST',
    path: '/keyed',
    roles: ['admin'],
    summary: 'reads a header',
    responses: {},
    headers: { 'X-Key': { description: 'a key', schema: z.string().regex(/^k\d$/).optional() } },
    handle: ({ res, headers }) => sendJson(res, 200, { key: headers['X-Key'] ?? null }),
  }),
  route({
    method: 'DELETE',
    path: '/fails/{how}',
    roles: ['admin'],
    summary: 'throws',
    responses: {},
    params: { how: 'conflict or crash' },
    handle: ({ params }) => {
      if (params.how === 'conflict') throw new GatewayError('api.conflict', 'in use', { field: 'id' });
      throw new Error('a bug with a secret inside');
    },
  }),
];

describe('admin API router', () => {
  const services: Services = { steps: [] };
  let server: Server;
  let base: string;

  /** What the router logged (JSON lines). */
  const logged: Array<{ level: number; msg: string }> = [];

  before(async () => {
    const handler = createRouter(routes, {
      prefix: '/api/v1',
      services,
      authenticate: (req, url, o) => authenticate(req, url, o),
      logger: pino({ level: 'info' }, { write: (line: string) => logged.push(JSON.parse(line)) }),
    });
    server = createServer(async (req, res) => {
      const url = new URL(req.url ?? '/', 'http://x.invalid');
      if (!(await handler(req, res, url))) res.writeHead(418).end('not mine');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const call = async (
    method: string,
    path: string,
    o: { token?: string; body?: string; headers?: Record<string, string> } = {},
  ) => {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: {
        ...(o.token ? { authorization: `Bearer ${o.token}` } : {}),
        ...(o.body === undefined ? {} : { 'content-type': 'application/json' }),
        ...o.headers,
      },
      ...(o.body === undefined ? {} : { body: o.body }),
    });
    const text = await res.text();
    const json = res.headers.get('content-type')?.includes('json') ? JSON.parse(text) : undefined;
    return { status: res.status, headers: res.headers, json, text };
  };

  test('paths outside the prefix are left to the next handler', async () => {
    const r = await call('GET', '/api/v10/things');
    assert.equal(r.status, 418);
    assert.equal(r.text, 'not mine');
  });

  test('unknown route, or a method the path does not have, is 404 before any token check', async () => {
    for (const [method, path] of [
      ['GET', '/api/v1/nothing'],
      ['GET', '/api/v1'],
      ['PATCH', '/api/v1/things'],
      ['GET', '/api/v1/things/1/extra'],
    ] as const) {
      const r = await call(method, path);
      assert.equal(r.status, 404, `${method} ${path}`);
      assert.equal(r.json.error.code, 'api.not_found');
      assert.match(r.json.error.message, new RegExp(`^no route for ${method} `));
    }
  });

  test('no valid token is 401, before the role and the input are looked at', async () => {
    const r = await call('POST', '/api/v1/things', { body: '{"bad":1}' });
    assert.equal(r.status, 401);
    assert.equal(r.json.error.code, 'api.unauthorized');
    assert.equal(r.headers.get('www-authenticate'), 'Bearer');
    assert.equal((await call('GET', '/api/v1/things', { token: 'forged' })).status, 401);
  });

  test('a role not in the route is 403, before the input is validated', async () => {
    const r = await call('POST', '/api/v1/things', { token: 'operator', body: '{"bad":1}' });
    assert.equal(r.status, 403);
    assert.equal(r.json.error.code, 'api.forbidden');
    assert.equal(r.json.error.message, 'the operator role may not POST /things');
  });

  test('input validation is 400 naming the field: query fields as query.<name>, body fields by name', async () => {
    let r = await call('GET', '/api/v1/things?limit=0', { token: 'viewer' });
    assert.equal(r.status, 400);
    assert.deepEqual([r.json.error.code, r.json.error.field], ['api.bad_input', 'query.limit']);
    r = await call('GET', '/api/v1/things?colour=red', { token: 'viewer' });
    assert.deepEqual([r.status, r.json.error.field], [400, 'query.colour']);
    r = await call('POST', '/api/v1/things', { token: 'admin', body: '{"name":""}' });
    assert.deepEqual([r.status, r.json.error.field], [400, 'name']);
    r = await call('POST', '/api/v1/things', { token: 'admin', body: '{"name":"x","extra":1}' });
    assert.deepEqual(
      [r.status, r.json.error.field, r.json.error.message],
      [400, 'extra', 'unknown field extra'],
    );
    r = await call('POST', '/api/v1/things', { token: 'admin', body: '{not json' });
    assert.deepEqual([r.status, r.json.error.field], [400, 'body']);
    // A required body that is missing.
    r = await call('POST', '/api/v1/things', { token: 'admin' });
    assert.equal(r.status, 400);
    assert.equal(r.json.error.field, undefined);
  });

  test('valid input reaches the handler parsed (defaults applied, the caller known)', async () => {
    assert.deepEqual((await call('GET', '/api/v1/things', { token: 'viewer' })).json, { limit: 10 });
    assert.deepEqual((await call('GET', '/api/v1/things?limit=3', { token: 'viewer' })).json, { limit: 3 });
    const r = await call('POST', '/api/v1/things', { token: 'admin', body: '{"name":"box"}' });
    assert.equal(r.status, 201);
    assert.deepEqual(r.json, { name: 'box', by: 'admin-user' });
    assert.deepEqual((await call('GET', '/api/v1/open')).json, { user: '' });
  });

  test('path parameters are decoded; a literal segment wins over a parameter', async () => {
    assert.deepEqual((await call('GET', '/api/v1/things/a%20b', { token: 'operator' })).json, { id: 'a b' });
    assert.deepEqual((await call('GET', '/api/v1/things/latest.csv', { token: 'operator' })).json, {
      latest: true,
    });
    // The dot is literal: another character in its place is a parameter value.
    assert.deepEqual((await call('GET', '/api/v1/things/latestXcsv', { token: 'operator' })).json, {
      id: 'latestXcsv',
    });
  });

  test('a path segment that is not valid percent-encoding is 400 naming the parameter, and logs no error', async () => {
    logged.length = 0;
    for (const bad of ['%E0%A4%A', '%', '%zz', '%C0%80x%']) {
      const r = await call('GET', `/api/v1/things/${bad}`, { token: 'operator' });
      assert.equal(r.status, 400, bad);
      assert.deepEqual([r.json.error.code, r.json.error.field], ['api.bad_input', 'id'], bad);
    }
    assert.deepEqual(
      logged.filter((l) => l.level >= 50),
      [],
      'nothing is logged as a failure (no stack trace)',
    );
  });

  test('a token in the URL is refused (400 access_token) on every route, before it is looked at', async () => {
    for (const [path, token] of [
      ['/api/v1/things?access_token=viewer', undefined],
      ['/api/v1/things?access_token=viewer', 'viewer'],
      ['/api/v1/open?access_token=x', undefined],
      ['/api/v1/things/t1/feed?access_token=viewer', undefined],
    ] as const) {
      const r = await call('GET', path, token ? { token } : {});
      assert.equal(r.status, 400, path);
      assert.deepEqual([r.json.error.code, r.json.error.field], ['api.bad_input', 'access_token']);
    }
  });

  test('a stream route takes a ticket for its own path in place of the header; others do not', async () => {
    let r = await call('GET', '/api/v1/things/t1/feed?ticket=t:/things/t1/feed&kind=k');
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json, { user: 'ticket-user', kind: 'k' }, 'the ticket is not a query field');
    r = await call('GET', '/api/v1/things/t1/feed?ticket=t:/things/t2/feed');
    assert.equal(r.status, 401, 'a ticket for another path');
    r = await call('GET', '/api/v1/things?ticket=t:/things');
    assert.equal(r.status, 401, 'a route that is no stream takes no ticket');
  });

  test('declared headers are validated (400 naming the header) and handed over', async () => {
    let r = await call('POST', '/api/v1/keyed', { token: 'admin', headers: { 'x-key': 'k1' } });
    assert.deepEqual(r.json, { key: 'k1' });
    r = await call('POST', '/api/v1/keyed', { token: 'admin' });
    assert.deepEqual(r.json, { key: null });
    r = await call('POST', '/api/v1/keyed', { token: 'admin', headers: { 'x-key': 'bad key' } });
    assert.deepEqual([r.status, r.json.error.field], [400, 'X-Key']);
  });

  test('HEAD is routed as GET', async () => {
    const res = await fetch(`${base}/api/v1/things`, {
      method: 'HEAD',
      headers: { authorization: 'Bearer viewer' },
    });
    assert.equal(res.status, 200);
  });

  test('the guard runs after the role check and before validation; path parameters with a schema are validated', async () => {
    services.steps.length = 0;
    let r = await call('PUT', '/api/v1/things/t1/parts/locked', {
      token: 'operator',
      body: '{"size":"big"}',
    });
    assert.equal(r.status, 403, 'the guard refuses before the bad body is seen');
    assert.deepEqual(services.steps, ['guard']);
    r = await call('PUT', '/api/v1/things/t1/parts/locked', { token: 'viewer', body: '{"size":1}' });
    assert.equal(r.status, 403);
    assert.equal(r.json.error.message, 'the viewer role may not PUT /things/t1/parts/locked');
    assert.deepEqual(services.steps, ['guard'], 'the guard does not run for a refused role');
    r = await call('PUT', '/api/v1/things/x1/parts/wheel', { token: 'operator', body: '{"size":"big"}' });
    assert.deepEqual([r.status, r.json.error.field, r.json.error.message], [400, 'id', 'id: tN']);
    r = await call('PUT', '/api/v1/things/t1/parts/wheel', { token: 'operator', body: '{"size":"big"}' });
    assert.deepEqual([r.status, r.json.error.field], [400, 'size']);
    r = await call('PUT', '/api/v1/things/t1/parts/wheel', { token: 'operator', body: '{"size":3}' });
    assert.deepEqual(r.json, { id: 't1', part: 'wheel', size: 3 });
    // bodyOptional: an empty body is {}.
    r = await call('PUT', '/api/v1/things/t1/parts/wheel', { token: 'operator' });
    assert.deepEqual(r.json, { id: 't1', part: 'wheel', size: null });
  });

  test('one error handler: typed errors keep their status, anything else is a 500 that tells nothing', async () => {
    let r = await call('DELETE', '/api/v1/fails/conflict', { token: 'admin' });
    assert.equal(r.status, 409);
    assert.deepEqual(
      [r.json.error.code, r.json.error.message, r.json.error.field],
      ['api.conflict', 'in use', 'id'],
    );
    r = await call('DELETE', '/api/v1/fails/crash', { token: 'admin' });
    assert.equal(r.status, 500);
    // The registry's message, never the thrown error's.
    assert.deepEqual(r.json.error, { code: 'internal', message: ERROR_CODES.internal, retryable: false });
  });

  test('a parameter must be a whole segment', () => {
    assert.throws(
      () =>
        createRouter(
          [{ method: 'GET', path: '/x/a{id}', roles: 'public', summary: '', responses: {}, handle() {} }],
          { prefix: '/p', services, authenticate, logger: pino({ level: 'silent' }) },
        ),
      /whole segment/,
    );
  });
});

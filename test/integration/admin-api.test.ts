/**
 * The admin REST API against a real gateway process: every route, role and
 * error (400 with the field, 401, 403, 404, 409, 429), CSV import with a dry
 * run first, the audit log, and device logs and usage reports drawn from a
 * real handset connecting through the edge.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import jwt from 'jsonwebtoken';
import WebSocket from 'ws';
import { decodeFrame, encodeFrame } from '../../device-protocol/codec.ts';
import { Handset } from '../../device-protocol/handset.ts';
import { type Frame, Kind, PROTOCOL_VERSION } from '../../device-protocol/messages.ts';
import { eventually } from '../../testing/index.ts';
import { type Gateway, nextImei, startGateway } from '../harness/gateway.ts';
import { ADMIN, ApiClient, assertError, readEvents, WAIT_MS, WAIT } from './admin-api-helpers.ts';

const PER_ADDRESS = 60;
const IMPORT_MAX_ROWS = 100;
const RESUME_WINDOW_MS = 1000;

describe('admin REST API', () => {
  let gw: Gateway;
  let admin: ApiClient;
  let operator: ApiClient;
  let viewer: ApiClient;

  before(async () => {
    const config = join(
      (await import('node:os')).tmpdir(),
      `mmgw-admin-api-${process.pid}-${Date.now()}.json`,
    );
    writeFileSync(
      config,
      JSON.stringify({
        admin: { loginFailuresPerAddress: PER_ADDRESS, importMaxRows: IMPORT_MAX_ROWS },
        // A closed handset's session ends (its logout) once this window passes without a Resume.
        edge: { resumeWindowMs: RESUME_WINDOW_MS },
      }),
    );
    gw = await startGateway({
      args: ['--engine', 'portable', '--config', config],
      env: { MMGW_ADMIN_NAME: ADMIN.name, MMGW_ADMIN_PASSWORD: ADMIN.password },
    });
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
  });
  after(async () => {
    await gw?.stop();
  });

  test('openapi.json is public and lists every route', async () => {
    const r = await new ApiClient(gw.adminUrl).call('GET', '/openapi.json');
    assert.equal(r.status, 200);
    assert.equal(r.json.openapi, '3.1.0');
    for (const path of [
      '/auth/login',
      '/devices',
      '/devices/{imei}',
      '/devices/import',
      '/devices/export.csv',
      '/devices/{imei}/logs',
      '/devices/{imei}/logs/stream',
      '/operators',
      '/operator-profiles/{id}',
      '/services',
      '/service-profiles',
      '/capabilities/{id}',
      '/reports/usage',
      '/nodes',
      '/nodes/{id}/drain',
      '/nodes/history',
      '/alarms',
      '/alarms/history',
      '/audit',
      '/users',
    ]) {
      assert.ok(r.json.paths[path], `openapi lists ${path}`);
    }
  });

  test('unknown routes are 404 api.not_found, with or without a token', async () => {
    assertError(await admin.call('GET', '/no-such-thing'), 404, 'api.not_found');
    assertError(await new ApiClient(gw.adminUrl).call('GET', '/devices/123/nope'), 404, 'api.not_found');
    assertError(await admin.call('PUT', '/devices'), 404, 'api.not_found');
  });

  test('login: bad input 400, wrong password 401, token checks 401', async () => {
    const anon = new ApiClient(gw.adminUrl);
    assertError(await anon.call('POST', '/auth/login', { name: 'root' }), 400, 'api.bad_input', 'password');
    assertError(
      await anon.call('POST', '/auth/login', '{not json', { 'content-type': 'application/json' }),
      400,
      'api.bad_input',
    );
    assertError(
      await anon.call('POST', '/auth/login', { name: 'root', password: 'wrong password!' }),
      401,
      'api.unauthorized',
    );
    assertError(
      await anon.call('POST', '/auth/login', { name: 'nobody', password: 'wrong password!' }),
      401,
      'api.unauthorized',
    );
    // No token, garbage token, a token of another key, alg none, an expired one.
    assertError(await anon.call('GET', '/devices'), 401, 'api.unauthorized');
    const withToken = (token: string) => Object.assign(new ApiClient(gw.adminUrl), { token });
    assertError(await withToken('garbage').call('GET', '/devices'), 401, 'api.unauthorized');
    const other = jwt.sign({ sub: 'root', role: 'admin' }, 'x'.repeat(43), {
      algorithm: 'HS256',
      issuer: 'mmgw-admin',
      expiresIn: 60,
    });
    assertError(await withToken(other).call('GET', '/devices'), 401, 'api.unauthorized');
    const none = jwt.sign({ sub: 'root', role: 'admin', iss: 'mmgw-admin' }, '', { algorithm: 'none' });
    assertError(await withToken(none).call('GET', '/devices'), 401, 'api.unauthorized');
    const key = readFileSync(join(gw.dataDir, 'keys', 'admin-jwt.key'), 'utf8').trim();
    const past = Math.floor(Date.now() / 1000) - 7200;
    const expired = jwt.sign({ sub: 'root', role: 'admin', iat: past, exp: past + 60 }, key, {
      algorithm: 'HS256',
      issuer: 'mmgw-admin',
      noTimestamp: true,
    });
    assertError(await withToken(expired).call('GET', '/devices'), 401, 'auth.token_expired');
    const me = await admin.call('GET', '/auth/me');
    assert.deepEqual(me.json, { name: 'root', role: 'admin' });
  });

  test('login is rate limited per user (429 auth.rate_limited)', async () => {
    const r0 = await admin.call('POST', '/users', {
      name: 'victim',
      role: 'viewer',
      password: 'victim-password-long',
    });
    assert.equal(r0.status, 201);
    const anon = new ApiClient(gw.adminUrl);
    for (let i = 0; i < 5; i++) {
      assertError(
        await anon.call('POST', '/auth/login', { name: 'victim', password: `wrong ${i} password` }),
        401,
        'api.unauthorized',
      );
    }
    // Even the right password is refused now: the guesser cannot tell.
    const r = await anon.call('POST', '/auth/login', { name: 'victim', password: 'victim-password-long' });
    assertError(r, 429, 'auth.rate_limited');
    assert.ok(Number(r.headers.get('retry-after')) > 0);
  });

  test('viewer reads reports and monitor only (403 elsewhere)', async () => {
    assert.equal((await viewer.call('GET', '/reports/usage')).status, 200);
    assert.equal((await viewer.call('GET', '/nodes')).status, 200);
    assert.equal((await viewer.call('GET', '/alarms')).status, 200);
    for (const [m, p] of [
      ['GET', '/devices'],
      ['GET', '/devices/490154203237518'],
      ['POST', '/devices'],
      ['GET', '/operators'],
      ['GET', '/audit'],
      ['GET', '/users'],
      ['POST', '/nodes/x/drain'],
      ['GET', '/devices/export.csv'],
    ] as const) {
      assertError(await viewer.call(m, p, m === 'POST' ? {} : undefined), 403, 'api.forbidden');
    }
  });

  test('operator manages devices and reads everything, changes no reference data', async () => {
    for (const p of [
      '/operators',
      '/service-profiles',
      '/capabilities',
      '/audit',
      '/reports/usage',
      '/nodes',
      '/devices',
    ]) {
      assert.equal((await operator.call('GET', p)).status, 200, p);
    }
    assertError(await operator.call('POST', '/operators', { id: 'x', name: 'X' }), 403, 'api.forbidden');
    assertError(await operator.call('DELETE', '/operators/x'), 403, 'api.forbidden');
    assertError(await operator.call('GET', '/users'), 403, 'api.forbidden');
    assertError(await operator.call('POST', '/nodes/x/drain'), 403, 'api.forbidden');
  });

  test('every route of openapi.json: 401 without a token, 403 for a role not in x-roles, allowed otherwise', async () => {
    const doc = (await new ApiClient(gw.adminUrl).call('GET', '/openapi.json')).json;
    const clients = { admin, operator, viewer } as const;
    const names = { admin: ADMIN.name, operator: 'ops1', viewer: 'view1' } as const;
    const absentImei = nextImei();
    let checked = 0;
    /** Status and error code; a stream's body is not read (it would not end). */
    const call = async (who: ApiClient | undefined, method: string, path: string) => {
      const ac = new AbortController();
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (who?.token) headers.authorization = `Bearer ${who.token}`;
      const hasBody = method === 'POST' || method === 'PUT' || method === 'PATCH';
      try {
        const res = await fetch(`${gw.adminUrl}/api/v1${path}`, {
          method,
          headers,
          ...(hasBody ? { body: '{}' } : {}),
          signal: ac.signal,
        });
        if (/text\/event-stream/.test(res.headers.get('content-type') ?? ''))
          return { status: res.status, code: undefined, message: '' };
        const text = await res.text();
        const error = text.startsWith('{') ? JSON.parse(text).error : undefined;
        return { status: res.status, code: error?.code as string | undefined, message: error?.message ?? '' };
      } finally {
        ac.abort();
      }
    };
    for (const [template, item] of Object.entries(doc.paths as Record<string, Record<string, any>>)) {
      for (const [verb, operation] of Object.entries(item)) {
        if (verb === 'parameters') continue;
        const method = verb.toUpperCase();
        const roles = operation['x-roles'] as string[];
        assert.ok(Array.isArray(roles), `${method} ${template} names its roles`);
        const pathFor = (role: keyof typeof names) =>
          template
            .replace('{imei}', absentImei)
            .replace('{name}', names[role])
            .replace('{id}', 'matrix-absent')
            .replace(/\{\w+\}/g, 'matrix-absent');
        const where = `${method} ${template}`;
        if (Array.isArray(operation.security) && operation.security.length === 0) continue;
        const anon = await call(undefined, method, pathFor('viewer'));
        assert.equal(anon.status, 401, `${where} without a token`);
        assert.equal(anon.code, 'api.unauthorized', where);
        for (const role of ['admin', 'operator', 'viewer'] as const) {
          const r = await call(clients[role], method, pathFor(role));
          if (roles.includes(role)) {
            assert.ok(r.status !== 401 && r.status !== 403, `${where} as ${role}: ${r.status} ${r.code}`);
            assert.ok(!/^no route/.test(r.message), `${where} is routed (${r.message})`);
            assert.ok(r.status < 500, `${where} as ${role}: ${r.status} ${r.code}`);
          } else {
            assert.equal(r.status, 403, `${where} as ${role}`);
            assert.equal(r.code, 'api.forbidden', `${where} as ${role}`);
          }
          checked++;
        }
      }
    }
    assert.ok(checked >= 3 * 40, `checked ${checked} route and role pairs`);
  });

  test('reference data: create, read, replace with revision, 400 with field, 409, in-use, remove', async () => {
    const bodies: Record<string, Record<string, unknown>> = {
      operators: { id: 'ref-op', name: 'Ref Operator', mcc: '262', mnc: '01' },
      'operator-profiles': { id: 'ref-op-std', operator: 'ref-op', name: 'Standard', carrier: 'auto' },
      services: { id: 'ref-mail', name: 'Mail', kind: 'mail' },
      'service-profiles': {
        id: 'ref-sp',
        name: 'Mail and IM',
        services: ['mail', 'im'],
        accounts: [{ service: 'mail', label: 'Corp', imapHost: 'imap.example.org', imapPort: 993 }],
        policies: { maxAttachmentBytes: 1_000_000, bodyTruncateBytes: 4096, imageQuality: 60 },
      },
      capabilities: {
        id: 'ref-model',
        name: 'Feature phone',
        screen: { width: 240, height: 320 },
        formats: ['jpeg', 'png'],
        animates: false,
        imageBudgetBytes: 20000,
      },
    };
    for (const [kind, body] of Object.entries(bodies)) {
      const c = await admin.call('POST', `/${kind}`, body);
      assert.equal(c.status, 201, `${kind}: ${c.text}`);
      assert.equal(c.json.revision, 1);
      assert.equal(c.json.id, body.id);
      assertError(await admin.call('POST', `/${kind}`, body), 409, 'registry.duplicate');
      const g = await operator.call('GET', `/${kind}/${body.id}`);
      assert.equal(g.status, 200);
      assert.equal(g.json.name, body.name);
      const l = await operator.call('GET', `/${kind}`);
      assert.ok(l.json.items.some((x: { id: string }) => x.id === body.id));
      const put = await admin.call('PUT', `/${kind}/${body.id}`, {
        ...body,
        name: `${body.name} v2`,
        revision: 1,
      });
      assert.equal(put.status, 200, put.text);
      assert.equal(put.json.revision, 2);
      assertError(
        await admin.call('PUT', `/${kind}/${body.id}`, { ...body, revision: 1 }),
        409,
        'api.conflict',
        'revision',
      );
      assertError(await admin.call('GET', `/${kind}/missing-id`), 404, 'registry.not_found');
    }
    assertError(
      await admin.call('POST', '/service-profiles', {
        ...bodies['service-profiles'],
        id: 'bad',
        policies: { maxAttachmentBytes: 1, bodyTruncateBytes: 1, imageQuality: 0 },
      }),
      400,
      'api.bad_input',
      'policies.imageQuality',
    );
    assertError(
      await admin.call('POST', '/operators', { id: 'bad id!', name: 'x' }),
      400,
      'api.bad_input',
      'id',
    );
    assertError(
      await admin.call('POST', '/operators', { id: 'ok', name: 'x', extra: 1 }),
      400,
      'api.bad_input',
      'extra',
    );
    assertError(
      await admin.call('POST', '/operator-profiles', { id: 'p', operator: 'no-such-op', name: 'x' }),
      400,
      'registry.invalid_field',
      'operator',
    );
    assertError(
      await admin.call('POST', '/capabilities', { ...bodies.capabilities, id: 'm2', formats: [] }),
      400,
      'api.bad_input',
      'formats',
    );

    // A device refers to them: removing is refused until it is gone.
    const imei = nextImei();
    const d = await admin.call('POST', '/devices', {
      imei,
      operator: 'ref-op',
      operatorProfile: 'ref-op-std',
      serviceProfile: 'ref-sp',
      model: 'ref-model',
    });
    assert.equal(d.status, 201, d.text);
    assertError(await admin.call('DELETE', '/service-profiles/ref-sp'), 409, 'api.conflict');
    assertError(await admin.call('DELETE', '/operators/ref-op'), 409, 'api.conflict');
    assert.equal((await admin.call('DELETE', `/devices/${imei}`)).status, 204);
    for (const kind of ['operator-profiles', 'operators', 'services', 'service-profiles', 'capabilities']) {
      const body = bodies[kind];
      assert.ok(body, kind);
      const r = await admin.call('DELETE', `/${kind}/${body.id}`);
      assert.equal(r.status, 204, `${kind}: ${r.text}`);
      assertError(await admin.call('DELETE', `/${kind}/${body.id}`), 404, 'registry.not_found');
    }
    const audit = await admin.call('GET', '/audit?action=service-profiles&limit=10');
    const actions = audit.json.items.map((e: { action: string }) => e.action);
    assert.deepEqual(actions, [
      'service-profiles.remove',
      'service-profiles.update',
      'service-profiles.create',
    ]);
    const update = audit.json.items[1];
    assert.equal(update.actor, 'root');
    assert.equal(update.before.name, 'Mail and IM');
    assert.equal(update.after.name, 'Mail and IM v2');
  });

  describe('devices', () => {
    const prefix = '35999901';
    const imeis: string[] = [];

    before(async () => {
      for (const body of [
        { id: 'dev-op', name: 'Devices Operator' },
        { id: 'dev-op2', name: 'Second Operator' },
      ]) {
        assert.equal((await admin.call('POST', '/operators', body)).status, 201);
      }
      assert.equal(
        (
          await admin.call('POST', '/service-profiles', {
            id: 'dev-sp',
            name: 'Mail',
            services: ['mail'],
            policies: { maxAttachmentBytes: 100000, bodyTruncateBytes: 2048, imageQuality: 50 },
          })
        ).status,
        201,
      );
    });

    test('add: bad IMEI, unknown operator, unknown field → 400 with field; good → device and secret; duplicate 409', async () => {
      assertError(
        await operator.call('POST', '/devices', { imei: '490154203237519', operator: 'dev-op' }),
        400,
        'registry.invalid_imei',
        'imei',
      );
      assertError(
        await operator.call('POST', '/devices', { imei: '12345', operator: 'dev-op' }),
        400,
        'registry.invalid_imei',
        'imei',
      );
      assertError(
        await operator.call('POST', '/devices', { imei: '490154203237518', operator: 'nope' }),
        400,
        'registry.invalid_field',
        'operator',
      );
      assertError(
        await operator.call('POST', '/devices', {
          imei: '490154203237518',
          operator: 'dev-op',
          colour: 'red',
        }),
        400,
        'api.bad_input',
        'colour',
      );
      assertError(
        await operator.call('POST', '/devices', { imei: '490154203237518', operator: 'dev-op', imsi: '12' }),
        400,
        'registry.invalid_imsi',
        'imsi',
      );
      assertError(
        await operator.call('POST', '/devices', { operator: 'dev-op' }),
        400,
        'api.bad_input',
        'imei',
      );
      for (let i = 0; i < 5; i++) {
        const imei = (await import('../harness/gateway.ts')).luhnImei(
          `${prefix}${String(i).padStart(6, '0')}`,
        );
        imeis.push(imei);
        const r = await operator.call('POST', '/devices', {
          imei,
          imsi: `26201000000000${i}`,
          operator: i < 3 ? 'dev-op' : 'dev-op2',
          ...(i % 2 === 0 ? { serviceProfile: 'dev-sp' } : {}),
        });
        assert.equal(r.status, 201, r.text);
        assert.equal(r.json.device.imei, imei);
        assert.match(r.json.secret, /^[A-Za-z0-9_-]{40,}$/);
        assert.equal(r.json.device.secretHash, undefined);
      }
      assertError(
        await operator.call('POST', '/devices', { imei: imeis[0], operator: 'dev-op' }),
        409,
        'registry.duplicate',
        'imei',
      );
    });

    test('list: filters, paging, 400 on a bad query', async () => {
      const q = async (query: string) => {
        const r = await operator.call('GET', `/devices?${query}`);
        assert.equal(r.status, 200, r.text);
        return r.json;
      };
      assert.deepEqual(
        (await q(`imei=${prefix}`)).items.map((d: { imei: string }) => d.imei),
        imeis,
      );
      assert.equal((await q(`imei=${prefix}&operator=dev-op2`)).items.length, 2);
      assert.equal((await q(`imei=${prefix}&serviceProfile=dev-sp`)).items.length, 3);
      assert.equal((await q(`imei=${prefix}&profile=dev-sp`)).items.length, 3);
      assert.deepEqual(
        (await q('imsi=262010000000003')).items.map((d: { imei: string }) => d.imei),
        [imeis[3]],
      );
      const page1 = await q(`imei=${prefix}&limit=2`);
      assert.equal(page1.items.length, 2);
      assert.equal(page1.next, imeis[1]);
      const page2 = await q(`imei=${prefix}&limit=2&after=${page1.next}`);
      assert.deepEqual(
        page2.items.map((d: { imei: string }) => d.imei),
        imeis.slice(2, 4),
      );
      const last = await q(`imei=${prefix}&limit=2&after=${imeis[3]}`);
      assert.equal(last.items.length, 1);
      assert.equal(last.next, undefined);
      assert.equal(typeof (await q('limit=1')).total, 'number');
      assertError(await operator.call('GET', '/devices?limit=0'), 400, 'api.bad_input', 'query.limit');
      assertError(await operator.call('GET', '/devices?status=maybe'), 400, 'api.bad_input', 'query.status');
      assertError(await operator.call('GET', '/devices?imei=abc'), 400, 'api.bad_input', 'query.imei');
      assertError(await operator.call('GET', '/devices?bogus=1'), 400, 'api.bad_input', 'query.bogus');
    });

    test('get, patch, enable/disable, reset-secret, delete — each audited with before/after', async () => {
      const imei = imeis[4];
      assert.equal((await operator.call('GET', `/devices/${imei}`)).json.operator, 'dev-op2');
      const p = await operator.call('PATCH', `/devices/${imei}`, {
        operator: 'dev-op',
        serviceProfile: 'dev-sp',
        imsi: null,
      });
      assert.equal(p.status, 200, p.text);
      assert.equal(p.json.operator, 'dev-op');
      assert.equal(p.json.serviceProfile, 'dev-sp');
      assert.equal(p.json.imsi, undefined);
      // The IMSI index follows: the old IMSI finds nothing, a new one finds the device.
      assert.equal((await operator.call('GET', '/devices?imsi=262010000000004')).json.items.length, 0);
      await operator.call('PATCH', `/devices/${imei}`, { imsi: '262019999999994' });
      assert.deepEqual(
        (await operator.call('GET', '/devices?imsi=2620199999')).json.items.map(
          (d: { imei: string }) => d.imei,
        ),
        [imei],
      );
      assertError(
        await operator.call('PATCH', `/devices/${imei}`, { operator: 'nope' }),
        400,
        'registry.invalid_field',
        'operator',
      );
      assertError(
        await operator.call('PATCH', `/devices/${imei}`, { status: 'gone' }),
        400,
        'api.bad_input',
        'status',
      );
      assert.equal((await operator.call('POST', `/devices/${imei}/disable`)).json.status, 'disabled');
      assert.equal(
        (await operator.call('GET', `/devices?imei=${prefix}&status=disabled`)).json.items.length,
        1,
      );
      assert.equal((await operator.call('POST', `/devices/${imei}/enable`)).json.status, 'enabled');
      const s1 = await operator.call('POST', `/devices/${imei}/reset-secret`);
      assert.equal(s1.status, 200);
      assert.match(s1.json.secret, /^[A-Za-z0-9_-]{40,}$/);
      assert.equal((await operator.call('DELETE', `/devices/${imei}`)).status, 204);
      assertError(await operator.call('GET', `/devices/${imei}`), 404, 'registry.not_found');
      assertError(await operator.call('DELETE', `/devices/${imei}`), 404, 'registry.not_found');
      assertError(await operator.call('POST', `/devices/${imei}/enable`), 404, 'registry.not_found');
      const audit = await operator.call('GET', `/audit?target=device:${imei}`);
      assert.deepEqual(
        audit.json.items.map((e: { action: string }) => e.action),
        [
          'device.remove',
          'device.reset_secret',
          'device.enable',
          'device.disable',
          'device.update',
          'device.update',
          'device.create',
        ],
      );
      const upd = audit.json.items.filter((e: { action: string }) => e.action === 'device.update').at(-1);
      assert.equal(upd.actor, 'ops1');
      assert.equal(upd.role, 'operator');
      assert.equal(upd.before.operator, 'dev-op2');
      assert.equal(upd.after.operator, 'dev-op');
      assert.equal(typeof upd.at, 'number');
      // Nothing secret in the audit log.
      assert.doesNotMatch(JSON.stringify(audit.json), new RegExp(s1.json.secret));
    });

    test('import: dry run lists rejected rows by line and writes nothing; then all-or-nothing, then valid-only', async () => {
      const good1 = (await import('../harness/gateway.ts')).luhnImei(`${prefix}100001`);
      const good2 = (await import('../harness/gateway.ts')).luhnImei(`${prefix}100002`);
      const csv = [
        'imei,imsi,operator,serviceProfile,status',
        `${good1},262010000000101,dev-op,dev-sp,enabled`,
        '490154203237519,,dev-op,,', // bad check digit: line 3
        `${good2},,dev-op,,disabled`,
        `${imeis[0]},,dev-op,,`, // already in the registry: line 5
        `${good2},,dev-op,,`, // twice in the file: line 6
        '490154203237518,,unknown-op,,', // unknown operator: line 7
        'too,few', // wrong field count: line 8
      ].join('\n');
      const dry = await operator.call('POST', '/devices/import?dryRun=true&mode=valid-only', csv, {
        'content-type': 'text/csv',
      });
      assert.equal(dry.status, 200, dry.text);
      assert.equal(dry.json.dryRun, true);
      assert.deepEqual([dry.json.written, dry.json.wouldWrite], [0, 2]);
      assert.deepEqual(
        dry.json.rejected.map((r: { line: number; code: string; field?: string }) => [
          r.line,
          r.code,
          r.field ?? null,
        ]),
        [
          [3, 'registry.invalid_imei', 'imei'],
          [5, 'registry.duplicate', 'imei'],
          [6, 'registry.duplicate', 'imei'],
          [7, 'registry.invalid_field', 'operator'],
          [8, 'registry.invalid_field', null],
        ],
      );
      assert.deepEqual(dry.json.secrets, []);
      assertError(await operator.call('GET', `/devices/${good1}`), 404, 'registry.not_found');

      const aon = await operator.call('POST', '/devices/import', csv, { 'content-type': 'text/csv' });
      assertError(aon, 422, 'registry.import_rejected');
      assert.equal(aon.json.result.written, 0);
      assert.equal(aon.json.result.rejected.length, 5);
      assertError(await operator.call('GET', `/devices/${good1}`), 404, 'registry.not_found');

      const vo = await operator.call('POST', '/devices/import?mode=valid-only', csv, {
        'content-type': 'text/csv',
      });
      assert.equal(vo.status, 200, vo.text);
      assert.equal(vo.json.written, 2);
      assert.deepEqual(vo.json.secrets.map((s: { imei: string }) => s.imei).sort(), [good1, good2].sort());
      const d1 = await operator.call('GET', `/devices/${good1}`);
      assert.equal(d1.json.serviceProfile, 'dev-sp');
      assert.equal((await operator.call('GET', `/devices/${good2}`)).json.status, 'disabled');

      assertError(
        await operator.call('POST', '/devices/import?mode=sometimes', csv),
        400,
        'api.bad_input',
        'query.mode',
      );
      assertError(
        await operator.call('POST', '/devices/import', 'imei,colour\n1,2\n'),
        400,
        'api.bad_input',
        'colour',
      );
      assertError(await operator.call('POST', '/devices/import', ''), 400, 'api.bad_input');
      const audit = await operator.call('GET', '/audit?action=device.import');
      assert.equal(audit.json.items.length, 1);
      assert.equal(audit.json.items[0].after.written, 2);
      assert.equal(audit.json.items[0].after.rejected, 5);
    });

    test('export.csv lists the devices', async () => {
      const r = await operator.call('GET', `/devices/export.csv?imei=${prefix}`);
      assert.equal(r.status, 200);
      assert.match(r.headers.get('content-type') ?? '', /text\/csv/);
      const lines = r.text.trim().split(/\r?\n/);
      assert.equal(
        lines[0],
        'imei,imsi,operator,operatorProfile,serviceProfile,model,status,createdAt,lastSeenAt',
      );
      assert.equal(lines.length, 1 + 4 + 2);
      assert.ok(lines.some((l) => l.startsWith(`${imeis[0]},262010000000000,dev-op,,dev-sp,,enabled,`)));
    });
  });

  test('an import is a job: its result and audit entry stay fetchable; a retry under its Idempotency-Key answers it', async () => {
    const rows = [nextImei(), nextImei(), nextImei()];
    const csv = ['imei,operator', ...rows.map((i) => `${i},dev-op`)].join('\n');
    const key = `batch-${Date.now()}`;
    const send = (text: string, idempotencyKey: string) =>
      operator.call('POST', '/devices/import', text, {
        'content-type': 'text/csv',
        'idempotency-key': idempotencyKey,
      });
    const first = await send(csv, key);
    assert.equal(first.status, 200, first.text);
    assert.equal(first.json.job, key);
    assert.equal(first.json.written, 3);
    assert.deepEqual(first.json.secrets.map((x: { imei: string }) => x.imei).sort(), [...rows].sort());
    // The answer was delivered: a retry answers the same job, and nothing is a duplicate of itself.
    const again = await send(csv, key);
    assert.equal(again.status, 200, again.text);
    assert.deepEqual(
      [again.json.replayed, again.json.job, again.json.written, again.json.rejectedCount],
      [true, key, 3, 0],
    );
    assert.deepEqual(again.json.secrets, [], 'the secrets were delivered once, then wiped');
    assert.equal(again.json.secretsState, 'delivered');
    assertError(
      await send(`imei,operator\n${nextImei()},dev-op`, key),
      409,
      'api.conflict',
      'Idempotency-Key',
    );
    assertError(await send(csv, 'no spaces'), 400, 'api.bad_input', 'Idempotency-Key');

    const result = await operator.call('GET', `/devices/imports/${key}`);
    assert.equal(result.status, 200, result.text);
    assert.deepEqual(
      [result.json.state, result.json.written, result.json.actor, result.json.secretsState],
      ['done', 3, 'ops1', 'delivered'],
    );
    assert.deepEqual(result.json.secrets, []);
    const list = await operator.call('GET', '/devices/imports');
    assert.ok(list.json.items.some((j: { id: string }) => j.id === key));
    assertError(await operator.call('GET', '/devices/imports/no-such-job'), 404, 'registry.not_found');
    assertError(await viewer.call('GET', `/devices/imports/${key}`), 403, 'api.forbidden');
    const audit = await operator.call('GET', `/audit?target=import:${key}`);
    assert.deepEqual(
      audit.json.items.map((e: { action: string; actor: string }) => [e.action, e.actor]),
      [['device.import', 'ops1']],
      'written with the job, in the same transaction as its last rows',
    );
  });

  test(`an import of more than admin.importMaxRows (${IMPORT_MAX_ROWS}) rows is 413 naming the cap; nothing is written`, async () => {
    const rows = Array.from({ length: IMPORT_MAX_ROWS + 1 }, () => `${nextImei()},dev-op`);
    for (const query of ['?dryRun=true', '?mode=valid-only']) {
      const r = await operator.call(
        'POST',
        `/devices/import${query}`,
        ['imei,operator', ...rows].join('\n'),
        {
          'content-type': 'text/csv',
        },
      );
      assertError(r, 413, 'api.too_large');
      assert.match(
        r.json.error.message,
        new RegExp(`more than ${IMPORT_MAX_ROWS} rows \\(admin\\.importMaxRows\\)`),
      );
    }
    assertError(await operator.call('GET', `/devices/${rows[0]?.slice(0, 15)}`), 404, 'registry.not_found');
  });

  test('exported cells a spreadsheet would run get a leading quote; importing one back is refused, not stripped', async () => {
    assert.equal(
      (await admin.call('POST', '/operators', { id: '@calc', name: 'Formula-looking' })).status,
      201,
    );
    const imei = nextImei();
    assert.equal((await operator.call('POST', '/devices', { imei, operator: '@calc' })).status, 201);
    const exported = await operator.call('GET', `/devices/export.csv?imei=${imei}`);
    const line = exported.text.trim().split(/\r?\n/)[1] ?? '';
    assert.match(line, new RegExp(`^${imei},,'@calc,`));
    const back = await operator.call('POST', '/devices/import?dryRun=true', exported.text, {
      'content-type': 'text/csv',
    });
    assert.equal(back.status, 200, back.text);
    assert.equal(back.json.rejected[0]?.field, 'operator');
    assert.match(back.json.rejected[0]?.reason, /begins with the ' that an export puts/);
  });

  test('a path with bad percent-encoding is 400 api.bad_input, not a 500', async () => {
    assertError(await operator.call('GET', '/devices/%E0%A4%A'), 400, 'api.bad_input', 'imei');
    assertError(await operator.call('GET', '/devices/%E0%A4%A/logs'), 400, 'api.bad_input', 'imei');
  });

  test('users: add, list, 409, remove (tokens of a removed user stop working), password', async () => {
    const r = await admin.call('POST', '/users', {
      name: 'temp',
      role: 'viewer',
      password: 'temp-password-long',
    });
    assert.equal(r.status, 201);
    assertError(
      await admin.call('POST', '/users', { name: 'temp', role: 'viewer', password: 'temp-password-long' }),
      409,
      'registry.duplicate',
    );
    assertError(
      await admin.call('POST', '/users', { name: 'x', role: 'king', password: 'temp-password-long' }),
      400,
      'api.bad_input',
      'role',
    );
    assertError(
      await admin.call('POST', '/users', { name: 'y', role: 'viewer', password: 'short' }),
      400,
      'api.bad_input',
      'password',
    );
    const temp = await ApiClient.as(gw.adminUrl, 'temp', 'temp-password-long');
    // Changing one's own password needs the current one; the answer carries a new token, the old one stops.
    assertError(
      await temp.call('PUT', '/users/temp/password', { password: 'another-long-one' }),
      400,
      'api.bad_input',
      'oldPassword',
    );
    assertError(
      await temp.call('PUT', '/users/temp/password', {
        password: 'another-long-one',
        oldPassword: 'not-the-password',
      }),
      403,
      'api.forbidden',
      'oldPassword',
    );
    const before = temp.token;
    const changed = await temp.call('PUT', '/users/temp/password', {
      password: 'another-long-one',
      oldPassword: 'temp-password-long',
    });
    assert.equal(changed.status, 200, changed.text);
    assert.equal(typeof changed.json.token, 'string');
    assertError(
      await new ApiClient(gw.adminUrl).call('GET', '/auth/me', undefined, {
        authorization: `Bearer ${before}`,
      }),
      401,
      'api.unauthorized',
    );
    temp.token = changed.json.token;
    assert.equal((await temp.call('GET', '/auth/me')).json.name, 'temp');
    assertError(
      await temp.call('PUT', '/users/root/password', { password: 'another-long-one' }),
      403,
      'api.forbidden',
    );
    assert.ok(
      (await admin.call('GET', '/users')).json.items.some((u: { name: string }) => u.name === 'temp'),
    );
    // Another role ends the user's tokens: they log in again, with the new role; audited.
    assertError(await temp.call('GET', '/devices'), 403, 'api.forbidden');
    const promoted = await admin.call('PUT', '/users/temp/role', { role: 'operator' });
    assert.equal(promoted.status, 200, promoted.text);
    assert.equal(promoted.json.role, 'operator');
    assertError(await temp.call('GET', '/devices'), 401, 'api.unauthorized');
    assert.equal((await temp.login('temp', 'another-long-one')).status, 200);
    assert.equal((await temp.call('GET', '/devices')).status, 200);
    assertError(await temp.call('PUT', '/users/temp/role', { role: 'admin' }), 403, 'api.forbidden');
    // An admin resets the user's password (no old one needed): the user's tokens stop.
    assert.equal(
      (await admin.call('PUT', '/users/temp/password', { password: 'reset-by-admin-1' })).status,
      200,
    );
    assertError(await temp.call('GET', '/devices'), 401, 'api.unauthorized');
    assert.equal((await temp.login('temp', 'reset-by-admin-1')).status, 200);
    assertError(await admin.call('PUT', '/users/temp/role', { role: 'king' }), 400, 'api.bad_input', 'role');
    assertError(
      await admin.call('PUT', '/users/root/role', { role: 'viewer' }),
      400,
      'api.bad_input',
      'name',
    );
    assertError(await admin.call('PUT', '/users/nobody/role', { role: 'viewer' }), 404, 'registry.not_found');
    const audit = (await admin.call('GET', '/audit?action=user.role')).json;
    const entry = audit.items.find((e: { target: string }) => e.target === 'user:temp');
    assert.ok(entry, JSON.stringify(audit));
    assert.equal(entry.before.role, 'viewer');
    assert.equal(entry.after.role, 'operator');
    assert.equal((await admin.call('DELETE', '/users/temp')).status, 204);
    assertError(await temp.call('GET', '/nodes'), 401, 'api.unauthorized');
    assertError(await admin.call('DELETE', '/users/root'), 400, 'api.bad_input', 'name');
  });

  test("disable, remove and reset-secret end a connected device's session at once", async () => {
    assert.equal((await admin.call('POST', '/operators', { id: 'revoke-op', name: 'Revoke' })).status, 201);
    for (const [action, code] of [
      ['disable', 'auth.disabled'],
      ['reset-secret', 'auth.bad_secret'],
      ['remove', 'auth.unknown_device'],
    ] as const) {
      const imei = nextImei();
      const added = await operator.call('POST', '/devices', { imei, operator: 'revoke-op' });
      assert.equal(added.status, 201, added.text);
      const h = new Handset({
        url: gw.url,
        imei,
        secret: added.json.secret,
        transport: 'ws',
        WebSocket,
        requestTimeoutMs: WAIT_MS,
        backoff: { initialMs: 100, maxMs: 1000 },
      });
      const ended = new Promise<{ code?: string; willReconnect: boolean }>((resolve) =>
        h.on('disconnected', (e) => resolve(e)),
      );
      h.on('error', () => {});
      await h.connect();
      const r =
        action === 'remove'
          ? await operator.call('DELETE', `/devices/${imei}`)
          : await operator.call('POST', `/devices/${imei}/${action}`);
      assert.ok(r.status < 300, `${action}: ${r.status} ${r.text}`);
      const e = await ended;
      assert.equal(e.code, code, action);
      assert.equal(e.willReconnect, false, action);
      await h.close();
      const logs = await eventually(
        `${action}: logout record`,
        async () => {
          const l = await operator.call('GET', `/devices/${imei}/logs?order=asc`);
          const items = (l.json?.items ?? []) as Array<{ kind: string; code?: string }>;
          return items.some((x) => x.kind === 'logout') ? items : undefined;
        },
        WAIT,
      );
      assert.equal(logs.find((x) => x.kind === 'logout')?.code, code, action);
    }
  });

  test("after reset-secret the device's old tokens are refused (auth.bad_token); a new secret works", async () => {
    const imei = nextImei();
    const added = await operator.call('POST', '/devices', { imei, operator: 'revoke-op' });
    assert.equal(added.status, 201, added.text);
    const first = await rawHello(gw.url, { imei, secret: added.json.secret });
    assert.equal(first.kind, Kind.Welcome);
    const token = (first as { token?: string }).token;
    assert.ok(token, 'Welcome carries a token');
    // Before the reset the token is good for a new Hello.
    assert.equal((await rawHello(gw.url, { imei, token })).kind, Kind.Welcome);
    const reset = await operator.call('POST', `/devices/${imei}/reset-secret`);
    assert.equal(reset.status, 200, reset.text);
    const refused = await rawHello(gw.url, { imei, token });
    assert.equal(refused.kind, Kind.Error);
    assert.equal((refused as { code?: string }).code, 'auth.bad_token');
    assert.equal((await rawHello(gw.url, { imei, secret: reset.json.secret })).kind, Kind.Welcome);
  });

  test('a Hello for an IMEI nobody provisioned lands in the security log, which only admins read', async () => {
    const stranger = nextImei();
    // Its own source address: refusals are sampled per address, and other tests refuse from 127.0.0.1.
    const from = `127.0.${1 + Math.floor(Math.random() * 200)}.${2 + Math.floor(Math.random() * 200)}`;
    const ws = new WebSocket(gw.url.replace(/\/?$/, '') + '/v1/ws', { localAddress: from });
    const code = await new Promise<string>((resolve, reject) => {
      ws.once('open', () => {
        ws.send(
          encodeFrame({ kind: Kind.Hello, version: PROTOCOL_VERSION, imei: stranger, secret: 'guess' }),
        );
      });
      ws.once('message', (data) => {
        const f = decodeFrame(new Uint8Array(data as Buffer));
        resolve(f.ok && f.frame.kind === Kind.Error ? f.frame.code : JSON.stringify(f));
      });
      ws.once('error', reject);
    });
    ws.terminate();
    assert.equal(code, 'auth.unknown_device');
    const entry = await eventually(
      'the refusal in the security log',
      async () => {
        const r = await admin.call('GET', '/security-log?limit=1000');
        assert.equal(r.status, 200, r.text);
        return (r.json.items as Array<{ imei: string; code: string }>).find((i) => i.imei === stranger);
      },
      WAIT,
    );
    assert.equal(entry.code, 'auth.unknown_device');
    assert.equal((entry as { detail?: { address?: string } }).detail?.address, from);
    assert.equal((await admin.call('GET', `/devices/${stranger}/logs`)).json?.items?.length ?? 0, 0);
    assert.equal((await operator.call('GET', '/security-log')).status, 403);
    assert.equal((await viewer.call('GET', '/security-log')).status, 403);
    assert.equal((await admin.call('GET', '/security-log?limit=0')).status, 400);
  });

  test('a handset connecting shows in its device log (and the live tail) and in the usage report', async () => {
    assert.equal((await admin.call('POST', '/operators', { id: 'usage-op', name: 'Usage' })).status, 201);
    const imei = nextImei();
    const added = await operator.call('POST', '/devices', { imei, operator: 'usage-op' });
    assert.equal(added.status, 201, added.text);
    const secret = added.json.secret;
    const startedAt = Date.now();
    const handset = () =>
      new Handset({
        url: gw.url,
        imei,
        secret,
        transport: 'ws',
        WebSocket,
        client: 'admin-api-test/1',
        requestTimeoutMs: WAIT_MS,
        backoff: { initialMs: 100, maxMs: 1000 },
      });

    // The first device drops off the network (no Bye): its carrier closes at once
    // (disconnect); the session ends when its resume window passes (logout, session.expired).
    const first = new WebSocket(gw.url.replace(/\/?$/, '') + '/v1/ws');
    await new Promise<void>((resolve, reject) => {
      first.once('open', () => {
        first.send(encodeFrame({ kind: Kind.Hello, version: PROTOCOL_VERSION, imei, secret }));
      });
      first.once('message', (data) => {
        const f = decodeFrame(new Uint8Array(data as Buffer));
        if (f.ok && f.frame.kind === Kind.Welcome) resolve();
        else reject(new Error(`no Welcome: ${JSON.stringify(f)}`));
      });
      first.once('error', reject);
    });
    first.terminate();

    const logs = await eventually(
      'connect, disconnect and logout records',
      async () => {
        const r = await operator.call('GET', `/devices/${imei}/logs?order=asc`);
        assert.equal(r.status, 200, r.text);
        const kinds = r.json.items.map((x: { kind: string }) => x.kind);
        return kinds.includes('logout') ? r.json.items : undefined;
      },
      WAIT,
    );
    const kindsInOrder = logs.map((x: { kind: string }) => x.kind);
    assert.deepEqual(kindsInOrder, ['connect', 'disconnect', 'logout']);
    const connect = logs.find((x: { kind: string }) => x.kind === 'connect');
    assert.equal(connect.imei, imei);
    assert.equal(connect.service, 'session');
    assert.equal(connect.node, gw.nodeId);
    const logout = logs.find((x: { kind: string }) => x.kind === 'logout');
    assert.equal(logout.code, 'session.expired');
    assert.ok(logout.at - logs[1].at >= RESUME_WINDOW_MS, 'the logout comes after the resume window');
    // Filters: kind and time.
    const onlyConnect = await operator.call('GET', `/devices/${imei}/logs?kind=connect`);
    assert.ok(
      onlyConnect.json.items.length >= 1 &&
        onlyConnect.json.items.every((x: { kind: string }) => x.kind === 'connect'),
    );
    const before = await operator.call('GET', `/devices/${imei}/logs?to=${startedAt - 60_000}`);
    assert.equal(before.json.items.length, 0);
    assertError(await operator.call('GET', `/devices/${imei}/logs?kind=bogus`), 400, 'api.bad_input', 'kind');
    assertError(
      await operator.call('GET', `/devices/${imei}/logs?from=yesterday`),
      400,
      'api.bad_input',
      'from',
    );
    const page = await operator.call('GET', `/devices/${imei}/logs?limit=1`);
    assert.equal(page.json.items.length, 1);
    assert.ok(page.json.next);
    const page2 = await operator.call('GET', `/devices/${imei}/logs?limit=1&cursor=${page.json.next}`);
    assert.equal(page2.json.items.length, 1);
    assert.notDeepEqual(page2.json.items[0], page.json.items[0]);

    // Live tail: a second connection appears on the stream while it is open. EventSource cannot
    // send the Authorization header: it opens the stream with a single-use ticket, never the token.
    const second = handset();
    const ticket = await operator.call('POST', `/devices/${imei}/logs/stream-ticket`);
    assert.equal(ticket.status, 200, ticket.text);
    assert.ok(ticket.json.expiresAt - Date.now() <= 30_000);
    assert.ok(!ticket.json.url.includes(operator.token));
    const events = await readEvents(
      `${gw.adminUrl}${ticket.json.url}`,
      (evs) => evs.some((e) => e.event === 'log' && JSON.parse(e.data).kind === 'connect'),
      async () => {
        await second.connect();
      },
    );
    const live = events.find((e) => e.event === 'log');
    assert.equal(JSON.parse(live!.data).imei, imei);
    const anon = new ApiClient(gw.adminUrl);
    assertError(await anon.call('GET', ticket.json.url.replace('/api/v1', '')), 401, 'api.unauthorized');
    assertError(
      await anon.call('GET', `/devices/${imei}/logs/stream?access_token=${operator.token}`),
      400,
      'api.bad_input',
      'access_token',
    );
    const otherDevice = await operator.call('POST', `/devices/${nextImei()}/logs/stream-ticket`);
    assertError(
      await anon.call('GET', `/devices/${imei}/logs/stream?ticket=${otherDevice.json.ticket}`),
      401,
      'api.unauthorized',
    );
    assertError(await viewer.call('GET', `/devices/${imei}/logs/stream`), 403, 'api.forbidden');
    // A third connection while the second is up takes over: the second session ends at once.
    const third = handset();
    await third.connect();
    await second.close();
    await third.close(); // a Handset closed by its user logs out at once (Bye session.logout)
    const ends = await eventually(
      'three logouts in the device log',
      async () => {
        const r = await operator.call('GET', `/devices/${imei}/logs?kind=logout&order=asc`);
        return r.json.items.length >= 3 ? r.json.items : undefined;
      },
      WAIT,
    );
    assert.deepEqual(
      ends.map((x: { code: string }) => x.code),
      ['session.expired', 'session.replaced', 'session.logout'],
    );

    // Usage report, three formats, filtered to this operator: a login per Hello, a logout per
    // session end (not per carrier drop), so they balance once every session has ended.
    const from = new Date(startedAt - 3_600_000).toISOString();
    const report = await eventually(
      'three logins and logouts in the usage report',
      async () => {
        const r = await viewer.call(
          'GET',
          `/reports/usage?from=${from}&granularity=hour&operator=usage-op&format=json`,
        );
        assert.equal(r.status, 200, r.text);
        return r.json.totals.logins >= 3 && r.json.totals.logouts >= 3 ? r.json : undefined;
      },
      WAIT,
    );
    assert.equal(report.totals.logins, 3);
    assert.equal(report.totals.logouts, 3);
    assert.equal(report.granularity, 'hour');
    const hourRow = report.rows.find((row: { logins: number }) => row.logins > 0);
    assert.ok(hourRow.bucket.endsWith(':00:00.000Z'));
    const day = await viewer.call(
      'GET',
      `/reports/usage?from=${from}&granularity=day&operator=usage-op&groupBy=service`,
    );
    assert.equal(day.json.totals.logins, 3);
    assert.ok(
      day.json.rows.some(
        (r: { service: string; logins: number; logouts: number }) =>
          r.service === 'session' && r.logins === 3 && r.logouts === 3,
      ),
    );
    const csv = await viewer.call('GET', `/reports/usage?from=${from}&operator=usage-op&format=csv`);
    assert.equal(csv.status, 200);
    assert.match(csv.headers.get('content-type') ?? '', /text\/csv/);
    assert.match(csv.headers.get('content-disposition') ?? '', /attachment/);
    const csvLines = csv.text.trim().split(/\r?\n/);
    assert.equal(csvLines[0], 'bucket,logins,logouts,messagesIn,messagesOut,bytesIn,bytesOut');
    const csvSum = (col: number) => csvLines.slice(1).reduce((n, l) => n + Number(l.split(',')[col]), 0);
    assert.equal(csvSum(1), 3);
    assert.equal(csvSum(2), 3);
    const xml = await viewer.call('GET', `/reports/usage?from=${from}&operator=usage-op&format=xml`);
    assert.equal(xml.status, 200);
    assert.match(xml.headers.get('content-type') ?? '', /application\/xml/);
    assert.match(xml.text, /^<\?xml version="1.0"/);
    assert.match(xml.text, /<totals><logins>3<\/logins><logouts>3<\/logouts>/);
    // Other operators' reports do not see these logins.
    const other = await viewer.call('GET', `/reports/usage?from=${from}&operator=dev-op`);
    assert.equal(other.json.totals.logins, 0);
    assertError(
      await viewer.call('GET', '/reports/usage?granularity=week'),
      400,
      'api.bad_input',
      'query.granularity',
    );
    assertError(await viewer.call('GET', '/reports/usage?format=pdf'), 400, 'api.bad_input', 'query.format');
    assertError(
      await viewer.call('GET', '/reports/usage?from=2026-01-02&to=2026-01-01'),
      400,
      'api.bad_input',
      'from',
    );
    assertError(
      await viewer.call('GET', '/reports/usage?from=2020-01-01&to=2026-01-01&granularity=hour'),
      400,
      'api.bad_input',
      'to',
    );
  });

  test('nodes, node stream and alarms', async () => {
    const r = await viewer.call('GET', '/nodes');
    const self = r.json.items.find((n: { nodeId: string }) => n.nodeId === gw.nodeId);
    assert.ok(self, r.text);
    assert.equal(self.status, 'up');
    assert.ok(self.roles.includes('admin') && self.roles.includes('edge'));
    assert.equal(typeof self.release, 'string');
    assert.ok(self.rssBytes > 0);
    assert.ok(self.uptimeSeconds >= 0);
    assert.equal(typeof self.sessions, 'number');
    assert.equal(typeof self.cpuPercent, 'number');
    // The last hour: a sample every 15 s (none yet on a fresh node, or a few); no parameters taken.
    const hour = await viewer.call('GET', '/nodes/history');
    assert.equal(hour.status, 200, hour.text);
    assert.equal(hour.json.intervalMs, 15_000);
    assert.ok(Array.isArray(hour.json.items));
    assertError(await viewer.call('GET', '/nodes/history?since=1'), 400, 'api.bad_input');
    const ticket = await viewer.call('POST', '/nodes/stream-ticket');
    assert.equal(ticket.status, 200, ticket.text);
    const events = await readEvents(`${gw.adminUrl}${ticket.json.url}`, (evs) =>
      evs.some((e) => e.event === 'nodes'),
    );
    assert.ok(
      JSON.parse(events.find((e) => e.event === 'nodes')!.data).items.some(
        (n: { nodeId: string }) => n.nodeId === gw.nodeId,
      ),
    );
    const alarms = await viewer.call('GET', '/alarms?active=true');
    assert.equal(alarms.status, 200);
    assert.ok(Array.isArray(alarms.json.items));
    assertError(await viewer.call('GET', '/alarms?active=maybe'), 400, 'api.bad_input', 'active');
    assertError(await admin.call('POST', '/nodes/no-such-node/drain', {}), 404, 'api.not_found');
    assertError(
      await admin.call('POST', `/nodes/${gw.nodeId}/drain`, { reason: 5 }),
      400,
      'api.bad_input',
      'reason',
    );
  });

  test('login is rate limited per address (failures under many names from one address)', async () => {
    const anon = new ApiClient(gw.adminUrl);
    let limitedAt = 0;
    for (let i = 1; i <= PER_ADDRESS + 1; i++) {
      const r = await anon.call('POST', '/auth/login', {
        name: `sprayed-${i}`,
        password: 'not the password',
      });
      if (r.status === 429) {
        assertError(r, 429, 'auth.rate_limited');
        limitedAt = i;
        break;
      }
      assertError(r, 401, 'api.unauthorized');
    }
    assert.ok(limitedAt > 1 && limitedAt <= PER_ADDRESS + 1, `limited at attempt ${limitedAt}`);
  });
});

describe('admin REST API: drain', () => {
  test('POST /nodes/{id}/drain drains that node and it exits', async () => {
    const gw = await startGateway({
      args: ['--engine', 'portable'],
      // npm test runs gateways silent; this test reads the node's own log line.
      env: { MMGW_ADMIN_NAME: ADMIN.name, MMGW_ADMIN_PASSWORD: ADMIN.password, MMGW_LOG_LEVEL: 'info' },
    });
    try {
      const admin = await ApiClient.as(gw.adminUrl, ADMIN.name, ADMIN.password);
      const exited = new Promise<number | null>((resolve) =>
        gw.process.once('close', (code) => resolve(code)),
      );
      const r = await admin.call('POST', `/nodes/${gw.nodeId}/drain`, { reason: 'test' });
      assert.equal(r.status, 202, r.text);
      assert.equal(await exited, 0);
      assert.ok(
        gw.stdout.some((l) => l.includes('"draining"')),
        'the node logged that it drains',
      );
    } finally {
      await gw.stop();
    }
  });
});

/** One Hello over a fresh WebSocket: the first frame the gateway answers (then the socket is dropped). */
async function rawHello(url: string, auth: { imei: string; secret?: string; token?: string }) {
  const ws = new WebSocket(`${url.replace(/\/?$/, '')}/v1/ws`);
  try {
    return await new Promise<Frame>((resolve, reject) => {
      ws.once('open', () => ws.send(encodeFrame({ kind: Kind.Hello, version: PROTOCOL_VERSION, ...auth })));
      ws.once('message', (data) => {
        const f = decodeFrame(new Uint8Array(data as Buffer));
        if (f.ok) resolve(f.frame);
        else reject(new Error('undecodable answer'));
      });
      ws.once('error', reject);
    });
  } finally {
    ws.terminate();
  }
}

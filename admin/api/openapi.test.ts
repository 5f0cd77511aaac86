import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { z } from 'zod';
import { DEVICE_CSV_COLUMNS } from '../../server/store/device-csv.ts';
import { buildOpenApiDocument } from './openapi.ts';
import { pathParamNames, type Route, routeFor } from './router.ts';
import { API_ROUTES, openApiDocument } from './routes/index.ts';

type Json = Record<string, any>;

/** Every value under `v` with key `key`. */
function collect(v: unknown, key: string, out: unknown[] = []): unknown[] {
  if (Array.isArray(v)) for (const x of v) collect(x, key, out);
  else if (v !== null && typeof v === 'object') {
    for (const [k, x] of Object.entries(v)) {
      if (k === key) out.push(x);
      collect(x, key, out);
    }
  }
  return out;
}

describe('OpenAPI document of the admin API', () => {
  const doc = openApiDocument() as Json;

  test('every route of the table is an operation of the document, and every operation a route', () => {
    const fromTable = API_ROUTES.map((r) => `${r.method} ${r.path}`).sort();
    const fromDoc = Object.entries(doc.paths as Record<string, Json>)
      .flatMap(([path, item]) => Object.keys(item).map((verb) => `${verb.toUpperCase()} ${path}`))
      .sort();
    assert.deepEqual(fromDoc, fromTable);
    assert.equal(new Set(fromTable).size, fromTable.length, 'no route is declared twice');
    assert.ok(fromTable.length >= 45, `${fromTable.length} routes`);
  });

  test('each operation states its roles, security, parameters, body and answers as the route declares them', () => {
    for (const r of API_ROUTES) {
      const op = doc.paths[r.path][r.method.toLowerCase()] as Json;
      const where = `${r.method} ${r.path}`;
      assert.equal(op.summary, r.summary, where);
      if (r.roles === 'public') {
        assert.deepEqual(op.security, [], `${where} needs no token`);
        assert.deepEqual(op['x-roles'], ['admin', 'operator', 'viewer']);
      } else if (r.ticket) {
        assert.deepEqual(
          op.security,
          [{ bearer: [] }, { streamTicket: [] }],
          `${where} takes the bearer token or a stream ticket`,
        );
        assert.deepEqual(op['x-roles'], r.roles, where);
      } else {
        assert.equal(op.security, undefined, `${where} uses the document's bearer security`);
        assert.deepEqual(op['x-roles'], r.roles, where);
        for (const status of ['400', '401', '403', '404'])
          assert.ok(op.responses[status], `${where} ${status}`);
      }
      const params = (op.parameters ?? []) as Json[];
      for (const name of pathParamNames(r.path))
        assert.ok(
          params.some((p) => p.in === 'path' && p.name === name && p.required === true && p.description),
          `${where} describes {${name}}`,
        );
      for (const name of Object.keys(r.headers ?? {}))
        assert.ok(
          params.some((p) => p.in === 'header' && p.name === name && p.schema && p.description),
          `${where} describes the ${name} header`,
        );
      if (r.query) {
        const names = Object.keys((r.query as z.ZodObject).shape);
        const listed = params.filter((p) => p.in === 'query').map((p) => p.name);
        assert.deepEqual(listed, names, `${where} lists its query parameters`);
      }
      if (r.body) {
        const schema = op.requestBody?.content?.['application/json']?.schema;
        assert.ok(schema && (schema.type === 'object' || schema.$ref), `${where} has a body schema`);
        assert.equal(op.requestBody.required, !r.bodyOptional, where);
      } else if (r.rawBody) assert.ok(op.requestBody.content[r.rawBody], where);
      else assert.equal(op.requestBody, undefined, where);
      for (const [status, answer] of Object.entries(r.responses)) {
        const documented = op.responses[status];
        assert.equal(documented?.description, answer.description, `${where} ${status}`);
        if (answer.json)
          assert.ok(documented.content['application/json'].schema, `${where} ${status} schema`);
      }
    }
  });

  test('no token in a URL: each stream takes a ticket from the route beside it; the import names its Idempotency-Key', () => {
    assert.ok(!JSON.stringify(doc).includes('access_token'));
    assert.deepEqual(doc.components.securitySchemes.streamTicket, {
      type: 'apiKey',
      in: 'query',
      name: 'ticket',
    });
    for (const stream of ['/devices/{imei}/logs/stream', '/nodes/stream']) {
      assert.ok(doc.paths[stream].get.security, stream);
      assert.ok(doc.paths[`${stream}-ticket`]?.post?.responses['200'], `${stream}-ticket`);
    }
    const post = doc.paths['/devices/import'].post as Json;
    assert.ok(
      (post.parameters as Json[]).some(
        (p) => p.in === 'header' && p.name === 'Idempotency-Key' && p.required === false,
      ),
    );
    assert.ok(doc.paths['/devices/imports/{id}'].get.responses['200'].content['application/json']);
    assert.ok(doc.paths['/devices/imports'].get);
  });

  test('the schemas are components, and every reference resolves inside the document', () => {
    const schemas = doc.components.schemas as Json;
    for (const name of ['Error', 'Device', 'DeviceLogRecord', 'UsageReport', 'Node', 'Alarm', 'AuditEntry'])
      assert.ok(schemas[name], `components.schemas.${name}`);
    assert.deepEqual(collect(doc, '$defs'), [], 'no $defs left behind');
    const refs = collect(doc, '$ref') as string[];
    assert.ok(refs.length > 50);
    for (const ref of refs) {
      const m = /^#\/components\/schemas\/(\w+)$/.exec(ref);
      assert.ok(m?.[1] && schemas[m[1]], `${ref} resolves`);
    }
    const device = doc.paths['/devices/{imei}'].get.responses['200'].content['application/json'].schema;
    assert.deepEqual(device, { $ref: '#/components/schemas/Device' });
    // The device CSV (CLI, API, UI) has the API's Device fields as its columns.
    assert.deepEqual(Object.keys(schemas.Device.properties), [...DEVICE_CSV_COLUMNS]);
  });

  test('a small table: parameters, bodies, components and answers as declared', () => {
    const route = routeFor<unknown>();
    // Strict: a plain object converts differently as input (extra keys allowed) and output.
    const Thing = z.object({ id: z.string(), size: z.number().int() }).strict().meta({ id: 'Thing' });
    const table: Route<unknown>[] = [
      route({
        method: 'PUT',
        path: '/things/{id}',
        roles: ['admin'],
        summary: 'Replace a thing',
        params: { id: { description: 'Thing id', schema: z.string().regex(/^t\d+$/) } },
        query: z.object({ dryRun: z.enum(['true', 'false']).default('false'), note: z.string().optional() }),
        body: z.object({ size: z.number().int(), parts: z.array(Thing).optional() }).strict(),
        bodyOptional: true,
        responses: {
          '200': { description: 'Replaced', json: Thing },
          '409': { description: 'Stale', json: z.object({ error: z.string() }) },
        },
        handle() {},
      }),
      route({
        method: 'GET',
        path: '/things.csv',
        roles: 'public',
        summary: 'All things',
        responses: { '200': { description: 'CSV', text: ['text/csv'] } },
        handle() {},
      }),
    ];
    const d = buildOpenApiDocument(table) as Json;
    const put = d.paths['/things/{id}'].put;
    assert.deepEqual(put.parameters, [
      {
        name: 'id',
        in: 'path',
        required: true,
        schema: { type: 'string', pattern: '^t\\d+$' },
        description: 'Thing id',
      },
      {
        name: 'dryRun',
        in: 'query',
        required: false,
        schema: { default: 'false', type: 'string', enum: ['true', 'false'] },
      },
      { name: 'note', in: 'query', required: false, schema: { type: 'string' } },
    ]);
    assert.equal(put.requestBody.required, false);
    assert.deepEqual(put.requestBody.content['application/json'].schema.properties.parts, {
      type: 'array',
      items: { $ref: '#/components/schemas/Thing' },
    });
    assert.deepEqual(put.responses['200'].content['application/json'].schema, {
      $ref: '#/components/schemas/Thing',
    });
    assert.deepEqual(Object.keys(put.responses), ['200', '400', '401', '403', '404', '409']);
    assert.deepEqual(d.components.schemas.Thing.required, ['id', 'size']);
    const csv = d.paths['/things.csv'].get;
    assert.deepEqual(csv.security, []);
    assert.deepEqual(csv.responses, {
      '200': { description: 'CSV', content: { 'text/csv': { schema: { type: 'string' } } } },
    });
  });

  test('one id converting two ways (input and output differ) is refused, not silently merged', () => {
    const route = routeFor<unknown>();
    const Shared = z.object({ n: z.number().default(1) }).meta({ id: 'Shared' });
    const table = [
      route({
        method: 'POST',
        path: '/x',
        roles: ['admin'],
        summary: 'x',
        body: z.object({ s: Shared }),
        responses: { '200': { description: 'OK', json: z.object({ s: Shared }) } },
        handle() {},
      }),
    ];
    assert.throws(() => buildOpenApiDocument(table), /schema Shared converts differently/);
  });

  test('a path parameter without a description is refused', () => {
    const undescribed = {
      method: 'GET',
      path: '/x/{id}',
      roles: ['admin'],
      summary: 'x',
      responses: {},
      handle() {},
    } as Route<unknown>;
    assert.throws(() => buildOpenApiDocument([undescribed]), /parameter id is not described/);
  });
});

/**
 * The OpenAPI 3.1 document of the admin REST API, served at
 * GET /api/v1/openapi.json (no token needed), built from the route table:
 * every route's path, method, roles, parameters, body and answers come from
 * its declaration (router.ts), and the schemas from the zod schemas the
 * router validates with, so document and behaviour cannot drift apart.
 * Schemas with an id (`.meta({ id })`) become components the operations
 * refer to.
 *
 * Roles: admin changes anything; operator reads everything and manages
 * devices; viewer reads reports and the monitor (nodes, alarms) only.
 * Every error answer is {error:{code, message, field?}}: 400 bad input (field
 * at fault), 401 missing/expired/bad/revoked token, 403 wrong role, 404
 * unknown route or record, 409 conflict, 413 body or import too large, 422
 * import rejected, 429 rate limited.
 */
import { isDeepStrictEqual } from 'node:util';
import { z } from 'zod';
import type { AdminRole } from '../../server/index.ts';
import { pathParamNames, type ResponseSpec, type Route } from './router.ts';
import * as S from './schemas.ts';

type Json = Record<string, unknown>;

const ALL_ROLES: readonly AdminRole[] = ['admin', 'operator', 'viewer'];
const COMPONENTS = '#/components/schemas/';

const STANDARD_ERRORS: Record<string, ResponseSpec> = {
  '400': {
    description: 'Bad input: error.code api.bad_input (or a registry.* code) and error.field',
    json: S.ErrorBody,
  },
  '401': {
    description: 'Missing, malformed or expired token (api.unauthorized, auth.token_expired)',
    json: S.ErrorBody,
  },
  '403': { description: 'The role may not do this (api.forbidden)', json: S.ErrorBody },
  '404': { description: 'No such route or record (api.not_found, registry.not_found)', json: S.ErrorBody },
};

/**
 * Turns zod schemas into JSON Schema for the document: zod puts the schemas
 * with an id in `$defs` beside each schema it converts; they move to
 * components.schemas (one copy each) and the references follow them.
 */
class SchemaSet {
  readonly components: Record<string, Json> = {};

  convert(s: z.ZodType, io: 'input' | 'output'): Json {
    const out = z.toJSONSchema(s, { io, unrepresentable: 'any' }) as Json;
    delete out.$schema;
    const defs = (out.$defs ?? {}) as Record<string, Json>;
    delete out.$defs;
    for (const [id, def] of Object.entries(defs)) {
      const moved = relink(def) as Json;
      const known = this.components[id];
      if (known && !isDeepStrictEqual(known, moved))
        throw new Error(
          `schema ${id} converts differently as ${io} (a plain object admits other keys as input only): make it strict, or give one of them another id`,
        );
      this.components[id] = moved;
    }
    return relink(out) as Json;
  }
}

function relink(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(relink);
  if (v === null || typeof v !== 'object') return v;
  const out: Json = {};
  for (const [k, x] of Object.entries(v)) {
    out[k] = k === '$ref' && typeof x === 'string' ? x.replace(/^#\/\$defs\//, COMPONENTS) : relink(x);
  }
  return out;
}

function operation<S>(r: Route<S>, schemas: SchemaSet): Json {
  const roles = r.roles === 'public' ? ALL_ROLES : r.roles;
  const parameters: Json[] = [];
  for (const name of pathParamNames(r.path)) {
    const spec = r.params?.[name];
    if (spec === undefined)
      throw new Error(`route ${r.method} ${r.path}: parameter ${name} is not described`);
    parameters.push({
      name,
      in: 'path',
      required: true,
      schema: typeof spec === 'string' ? { type: 'string' } : schemas.convert(spec.schema, 'input'),
      description: typeof spec === 'string' ? spec : spec.description,
    });
  }
  for (const [name, spec] of Object.entries(r.headers ?? {})) {
    parameters.push({
      name,
      in: 'header',
      required: !spec.schema.safeParse(undefined).success,
      schema: schemas.convert(spec.schema, 'input'),
      description: spec.description,
    });
  }
  if (r.query) {
    const js = schemas.convert(r.query, 'input') as {
      properties?: Record<string, Json>;
      required?: string[];
    };
    for (const [name, p] of Object.entries(js.properties ?? {})) {
      parameters.push({
        name,
        in: 'query',
        required: js.required?.includes(name) ?? false,
        schema: p,
        ...(typeof p.description === 'string' ? { description: p.description } : {}),
      });
    }
  }
  let requestBody: Json | undefined;
  if (r.body)
    requestBody = {
      required: !r.bodyOptional,
      content: { 'application/json': { schema: schemas.convert(r.body, 'input') } },
    };
  else if (r.rawBody)
    requestBody = { required: true, content: { [r.rawBody]: { schema: { type: 'string' } } } };

  const answers = r.roles === 'public' ? r.responses : { ...STANDARD_ERRORS, ...r.responses };
  const responses: Json = {};
  for (const status of Object.keys(answers).sort()) {
    const a = answers[status];
    if (!a) continue;
    const content: Json = {};
    if (a.json) content['application/json'] = { schema: schemas.convert(a.json, 'output') };
    for (const type of a.text ?? []) content[type] = { schema: { type: 'string' } };
    responses[status] = { description: a.description, ...(a.json || a.text ? { content } : {}) };
  }
  return {
    summary: r.summary,
    description: `Roles: ${roles.join(', ')}.`,
    'x-roles': roles,
    ...(parameters.length > 0 ? { parameters } : {}),
    ...(requestBody ? { requestBody } : {}),
    responses,
    ...(r.roles === 'public' ? { security: [] } : {}),
    ...(r.ticket ? { security: [{ bearer: [] }, { streamTicket: [] }] } : {}),
  };
}

/** The document of a route table; paths in the order of their first route. */
export function buildOpenApiDocument<S>(routes: readonly Route<S>[]): Json {
  const schemas = new SchemaSet();
  const paths: Record<string, Json> = {};
  for (const r of routes) {
    const item = (paths[r.path] ??= {});
    const verb = r.method.toLowerCase();
    if (item[verb]) throw new Error(`route ${r.method} ${r.path} is declared twice`);
    item[verb] = operation(r, schemas);
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'mmgw admin API',
      version: '1',
      description:
        'Provisioning, reference data, device logs, usage reports and the node monitor. ' +
        'Authenticate with POST /auth/login, then send `Authorization: Bearer <token>`; a token is ' +
        'never accepted in a URL, and stops working when its user’s password or role changes. ' +
        'A Server-Sent Events stream (EventSource cannot set headers) also takes `?ticket=<ticket>`: ' +
        'a stream ticket from the POST …/stream-ticket route beside it, good once, for 30 s, for that stream.',
    },
    servers: [{ url: '/api/v1' }],
    security: [{ bearer: [] }],
    components: {
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' },
        streamTicket: { type: 'apiKey', in: 'query', name: 'ticket' },
      },
      schemas: Object.fromEntries(Object.entries(schemas.components).sort(([a], [b]) => a.localeCompare(b))),
    },
    paths,
  };
}

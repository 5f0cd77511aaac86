/**
 * The OpenAPI 3.1 document of the admin REST API, served at
 * GET /api/v1/openapi.json (no token needed). Bodies come from the zod
 * schemas the handlers validate with (schemas.ts), so they cannot drift.
 *
 * Roles: admin changes anything; operator reads everything and manages
 * devices; viewer reads reports and the monitor (nodes, alarms) only.
 * Every error answer is {error:{code, message, field?}}: 400 bad input (field
 * at fault), 401 missing/expired/bad token, 403 wrong role, 404 unknown route
 * or record, 409 conflict, 413 body too large, 429 rate limited.
 */
import { z } from 'zod';
import * as S from './schemas.ts';

type Json = Record<string, unknown>;
type Role = 'admin' | 'operator' | 'viewer';

function schema(s: z.ZodType, io: 'input' | 'output' = 'output'): Json {
  const out = z.toJSONSchema(s, { io, unrepresentable: 'any' }) as Json;
  delete out.$schema;
  return out;
}

const errorResponse = (description: string) => ({
  description,
  content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
});

const STANDARD_ERRORS = {
  '400': errorResponse('Bad input: error.code api.bad_input (or a registry.* code) and error.field'),
  '401': errorResponse('Missing, malformed or expired token (api.unauthorized, auth.token_expired)'),
  '403': errorResponse('The role may not do this (api.forbidden)'),
  '404': errorResponse('No such route or record (api.not_found, registry.not_found)'),
};

function json(s: z.ZodType, description = 'OK'): Json {
  return { description, content: { 'application/json': { schema: schema(s) } } };
}

function queryParams(s: z.ZodObject): Json[] {
  const js = schema(s, 'input') as { properties?: Record<string, Json>; required?: string[] };
  return Object.entries(js.properties ?? {}).map(([name, p]) => ({
    name,
    in: 'query',
    required: js.required?.includes(name) ?? false,
    schema: p,
    ...(typeof p.description === 'string' ? { description: p.description } : {}),
  }));
}

const pathParam = (name: string, description: string) => ({
  name,
  in: 'path',
  required: true,
  schema: { type: 'string' },
  description,
});
const imeiParam = pathParam('imei', 'Device IMEI (15 digits)');

interface Op {
  summary: string;
  roles: Role[];
  params?: Json[];
  body?: Json;
  responses: Json;
  security?: boolean;
}

function op(o: Op): Json {
  return {
    summary: o.summary,
    description: `Roles: ${o.roles.join(', ')}.`,
    'x-roles': o.roles,
    ...(o.params ? { parameters: o.params } : {}),
    ...(o.body ? { requestBody: o.body } : {}),
    responses: { ...o.responses, ...(o.security === false ? {} : STANDARD_ERRORS) },
    ...(o.security === false ? { security: [] } : {}),
  };
}

const jsonBody = (s: z.ZodType) => ({
  required: true,
  content: { 'application/json': { schema: schema(s, 'input') } },
});

const ALL: Role[] = ['admin', 'operator', 'viewer'];
const STAFF: Role[] = ['admin', 'operator'];
const ADMIN: Role[] = ['admin'];

function refPaths(kind: S.RefKind, label: string): Json {
  const body = S.REF_KINDS[kind];
  const stored = (body as z.ZodObject).extend(S.RefMeta.shape);
  const withRevision = (body as z.ZodObject).extend({ revision: z.number().int().optional() });
  return {
    [`/${kind}`]: {
      get: op({
        summary: `List ${label}`,
        roles: STAFF,
        responses: { '200': json(z.object({ items: z.array(stored) })) },
      }),
      post: op({
        summary: `Create one of ${label} (audited)`,
        roles: ADMIN,
        body: jsonBody(body),
        responses: {
          '201': json(stored, 'Created'),
          '409': errorResponse('The id exists (registry.duplicate)'),
        },
      }),
    },
    [`/${kind}/{id}`]: {
      parameters: [pathParam('id', 'Record id')],
      get: op({ summary: `One of ${label}`, roles: STAFF, responses: { '200': json(stored) } }),
      put: op({
        summary: `Replace one of ${label} (audited); the body's id must match; revision, when given, must be the current one`,
        roles: ADMIN,
        body: jsonBody(withRevision),
        responses: { '200': json(stored), '409': errorResponse('Stale revision (api.conflict)') },
      }),
      delete: op({
        summary: `Remove one of ${label} (audited); refused while a device or profile refers to it`,
        roles: ADMIN,
        responses: {
          '204': { description: 'Removed' },
          '409': errorResponse('Still referred to (api.conflict)'),
        },
      }),
    },
  };
}

function buildDocument(): Json {
  const Ok = z.object({ ok: z.literal(true) });
  return {
    openapi: '3.1.0',
    info: {
      title: 'mmgw admin API',
      version: '1',
      description:
        'Provisioning, reference data, device logs, usage reports and the node monitor. ' +
        'Authenticate with POST /auth/login, then send `Authorization: Bearer <token>`. ' +
        'Server-Sent Event streams and report downloads also accept `?access_token=<token>` ' +
        '(EventSource and plain links cannot set headers).',
    },
    servers: [{ url: '/api/v1' }],
    security: [{ bearer: [] }],
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } },
      schemas: {
        Error: schema(S.ErrorBody),
        Device: schema(S.Device),
        DeviceLogRecord: schema(S.DeviceLogRecord),
        UsageReport: schema(S.UsageReport),
        Node: schema(S.NodeView),
        Alarm: schema(S.Alarm),
        AuditEntry: schema(S.AuditEntry),
      },
    },
    paths: {
      '/openapi.json': {
        get: op({
          summary: 'This document',
          roles: ALL,
          security: false,
          responses: { '200': { description: 'OpenAPI 3.1' } },
        }),
      },
      '/auth/login': {
        post: op({
          summary: 'Log in; rate limited per user name and per client address',
          roles: ALL,
          security: false,
          body: jsonBody(S.LoginBody),
          responses: {
            '200': json(S.LoginReply),
            '400': errorResponse('Bad input (api.bad_input)'),
            '401': errorResponse('Wrong name or password (api.unauthorized)'),
            '429': errorResponse('Too many attempts (auth.rate_limited); see Retry-After'),
          },
        }),
      },
      '/auth/me': {
        get: op({
          summary: 'Who the token belongs to',
          roles: ALL,
          responses: { '200': json(z.object({ name: z.string(), role: S.AdminRoleName })) },
        }),
      },
      '/users': {
        get: op({
          summary: 'Admin users',
          roles: ADMIN,
          responses: { '200': json(z.object({ items: z.array(S.AdminUser) })) },
        }),
        post: op({
          summary: 'Add an admin user (audited)',
          roles: ADMIN,
          body: jsonBody(S.NewAdminUser),
          responses: {
            '201': json(S.AdminUser, 'Created'),
            '409': errorResponse('Name taken (registry.duplicate)'),
          },
        }),
      },
      '/users/{name}': {
        parameters: [pathParam('name', 'User name')],
        delete: op({
          summary: 'Remove an admin user (audited); not yourself',
          roles: ADMIN,
          responses: { '204': { description: 'Removed' } },
        }),
      },
      '/users/{name}/role': {
        parameters: [pathParam('name', 'User name')],
        put: op({
          summary: 'Give a user another role (audited); not yourself. It applies from their next request on',
          roles: ADMIN,
          body: jsonBody(S.RoleBody),
          responses: { '200': json(S.AdminUser) },
        }),
      },
      '/users/{name}/password': {
        parameters: [pathParam('name', 'User name')],
        put: op({
          summary: 'Set a password (audited): admins for anyone, every user for themself',
          roles: ALL,
          body: jsonBody(S.PasswordBody),
          responses: { '200': json(Ok) },
        }),
      },
      '/devices': {
        get: op({
          summary: 'Search devices, IMEI order, paged with `after`',
          roles: STAFF,
          params: queryParams(S.DeviceListQuery),
          responses: { '200': json(S.DeviceList) },
        }),
        post: op({
          summary: 'Provision a device (audited); the secret is in this answer only',
          roles: STAFF,
          body: jsonBody(S.NewDevice),
          responses: {
            '201': json(S.DeviceWithSecret, 'Created'),
            '409': errorResponse('IMEI exists (registry.duplicate)'),
          },
        }),
      },
      '/devices/import': {
        post: op({
          summary:
            'Import devices from CSV (audited). Header: imei,operator required; imsi,operatorProfile,serviceProfile (alias profile),model,status,secret optional. ' +
            '`dryRun=true` writes nothing and returns the rejected rows with line numbers. all-or-nothing writes nothing if any row is rejected (then 422 registry.import_rejected unless dryRun); valid-only writes the good rows.',
          roles: STAFF,
          params: queryParams(S.ImportQuery),
          body: { required: true, content: { 'text/csv': { schema: { type: 'string' } } } },
          responses: {
            '200': json(S.ImportResult),
            '413': errorResponse('Body larger than 256 MiB (api.too_large)'),
            '422': {
              description: 'all-or-nothing with rejected rows: nothing written',
              content: {
                'application/json': {
                  schema: {
                    type: 'object',
                    properties: {
                      error: { $ref: '#/components/schemas/Error/properties/error' },
                      result: schema(S.ImportResult),
                    },
                  },
                },
              },
            },
          },
        }),
      },
      '/devices/export.csv': {
        get: op({
          summary:
            'Every device as CSV (imei,imsi,operator,operatorProfile,serviceProfile,model,status,createdAt,lastSeenAt); accepts the list filters',
          roles: STAFF,
          params: queryParams(S.DeviceListQuery.omit({ limit: true, after: true })),
          responses: {
            '200': { description: 'CSV', content: { 'text/csv': { schema: { type: 'string' } } } },
          },
        }),
      },
      '/devices/{imei}': {
        parameters: [imeiParam],
        get: op({ summary: 'One device', roles: STAFF, responses: { '200': json(S.Device) } }),
        patch: op({
          summary: 'Change a device (audited)',
          roles: STAFF,
          body: jsonBody(S.DevicePatch),
          responses: { '200': json(S.Device) },
        }),
        delete: op({
          summary: 'Remove a device (audited)',
          roles: STAFF,
          responses: { '204': { description: 'Removed' } },
        }),
      },
      '/devices/{imei}/enable': {
        parameters: [imeiParam],
        post: op({ summary: 'Enable (audited)', roles: STAFF, responses: { '200': json(S.Device) } }),
      },
      '/devices/{imei}/disable': {
        parameters: [imeiParam],
        post: op({
          summary: 'Disable (audited); the device can no longer log in',
          roles: STAFF,
          responses: { '200': json(S.Device) },
        }),
      },
      '/devices/{imei}/reset-secret': {
        parameters: [imeiParam],
        post: op({
          summary: 'New secret (audited), shown once; the old one stops working',
          roles: STAFF,
          responses: { '200': json(S.DeviceWithSecret) },
        }),
      },
      '/devices/{imei}/accounts': {
        parameters: [imeiParam],
        get: op({
          summary:
            "Accounts provisioned for the device's service profile presets (never a password); the device's transport brings them up by itself when it connects",
          roles: STAFF,
          responses: { '200': json(z.object({ items: z.array(S.DeviceAccount) })) },
        }),
      },
      '/devices/{imei}/accounts/{label}': {
        parameters: [imeiParam, pathParam('label', "A preset label of the device's service profile")],
        put: op({
          summary:
            'Set the credentials of one preset (audited, without the password). Mail presets need address (user defaults to it); chat presets need jid. The password is sealed with the credentials key (MMGW_CREDENTIALS_KEY, the same on admin and transport nodes) and never returned',
          roles: STAFF,
          body: jsonBody(S.DeviceAccountBody),
          responses: {
            '200': json(S.DeviceAccount, 'Replaced'),
            '201': json(S.DeviceAccount, 'Created'),
          },
        }),
        delete: op({
          summary: 'Remove a provisioned account (audited); the transport drops it at the next connect',
          roles: STAFF,
          responses: { '204': { description: 'Removed' } },
        }),
      },
      '/devices/{imei}/logs': {
        parameters: [imeiParam],
        get: op({
          summary: "One device's log records (newest first by default)",
          roles: STAFF,
          params: queryParams(S.LogQuery),
          responses: { '200': json(S.LogList) },
        }),
      },
      '/devices/{imei}/logs/stream': {
        parameters: [
          imeiParam,
          { name: 'access_token', in: 'query', required: false, schema: { type: 'string' } },
        ],
        get: op({
          summary:
            'Live tail as Server-Sent Events: `event: log` with a DeviceLogRecord as data for every record stored from now on; a comment line every 15 s keeps proxies from closing it',
          roles: STAFF,
          responses: {
            '200': {
              description: 'text/event-stream',
              content: { 'text/event-stream': { schema: { type: 'string' } } },
            },
          },
        }),
      },
      ...refPaths('operators', 'operators'),
      ...refPaths('operator-profiles', 'operator profiles'),
      ...refPaths('services', 'services'),
      ...refPaths('service-profiles', 'service profiles (allowed services, preset accounts, policies)'),
      ...refPaths('capabilities', 'capability profiles (per device model)'),
      '/reports/usage': {
        get: op({
          summary:
            'Usage counters (logins, logouts, messages and bytes in/out) per hour or day (UTC). format=csv answers text/csv, format=xml application/xml, each as a download',
          roles: ALL,
          params: queryParams(S.UsageQuery),
          responses: {
            '200': {
              description: 'The report',
              content: {
                'application/json': { schema: { $ref: '#/components/schemas/UsageReport' } },
                'text/csv': { schema: { type: 'string' } },
                'application/xml': { schema: { type: 'string' } },
              },
            },
          },
        }),
      },
      '/nodes': {
        get: op({
          summary: 'Every node (from heartbeats); nodes gone in the last hour are listed with status gone',
          roles: ALL,
          responses: { '200': json(z.object({ items: z.array(S.NodeView), at: z.number() })) },
        }),
      },
      '/nodes/stream': {
        get: op({
          summary:
            'Server-Sent Events: `event: nodes` with {items, at} every 2 s, and `event: alarms` with {items} when they change',
          roles: ALL,
          params: [{ name: 'access_token', in: 'query', required: false, schema: { type: 'string' } }],
          responses: {
            '200': {
              description: 'text/event-stream',
              content: { 'text/event-stream': { schema: { type: 'string' } } },
            },
          },
        }),
      },
      '/nodes/{id}/drain': {
        parameters: [pathParam('id', 'Node id')],
        post: op({
          summary: 'Drain a node (audited): it tells its devices to move, then exits',
          roles: ADMIN,
          body: {
            required: false,
            content: { 'application/json': { schema: schema(S.DrainBody, 'input') } },
          },
          responses: { '202': json(Ok, 'Asked') },
        }),
      },
      '/alarms': {
        get: op({
          summary:
            'Alarms: a node gone without draining; a backend failing (backend_error records). Active first',
          roles: ALL,
          params: [
            {
              name: 'active',
              in: 'query',
              required: false,
              schema: { type: 'string', enum: ['true', 'false'] },
            },
          ],
          responses: { '200': json(z.object({ items: z.array(S.Alarm) })) },
        }),
      },
      '/audit': {
        get: op({
          summary: 'Audit log of every change made through the API (newest first)',
          roles: STAFF,
          params: queryParams(S.AuditQuery),
          responses: { '200': json(S.AuditList) },
        }),
      },
    },
  };
}

let cached: Json | undefined;

/** The document (built once). */
export function openApiDocument(): Json {
  cached ??= buildDocument();
  return cached;
}

/**
 * The admin REST API under /api/v1, mounted on the node's ops endpoint
 * (node:http). One route table: method, path, who may call it, handler.
 * Order of checks: unknown route → 404; no valid token → 401; role → 403;
 * then the handler validates its input (400 with the field at fault).
 * Every change goes to the audit log with the record before and after.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { GatewayError } from '../../device-protocol/errors.ts';
import { type Bus, Subjects } from '../../server/bus/bus.ts';
import { csvLine, parseCsv } from '../../server/store/device-csv.ts';
import type { OpsHandler } from '../../server/ops/http.ts';
import type { DeviceLogKind, DeviceLogRecord } from '../../server/records/types.ts';
import type { AdminRole, Device as StoredDevice } from '../../server/store/records.ts';
import { type ProvisionedAccount, setDeviceAccount } from '../../server/store/device-profile.ts';
import type { ImportRejection, ImportRow, Registry } from '../../server/store/registry.ts';
import { importRowProblem } from '../../server/store/registry.ts';
import type { NodeMonitor } from '../monitor.ts';
import { DAY_MS, HOUR_MS, type RecordsStore } from '../records-store.ts';
import { LoginLimiter, type Principal, TokenIssuer } from './auth.ts';
import {
  badInput,
  parse,
  parseTime,
  queryObject,
  readBody,
  readJson,
  sendApiError,
  sendJson,
  sendText,
} from './http-util.ts';
import { openApiDocument } from './openapi.ts';
import * as S from './schemas.ts';

export const API_PREFIX = '/api/v1';
const IMPORT_MAX_BYTES = 256 * 1024 * 1024;

export interface AdminApiOptions {
  registry: Registry;
  records: RecordsStore;
  monitor: NodeMonitor;
  bus: Bus;
  logger: Logger;
  jwtKey: string;
  /** Token lifetime. Default 12 h. */
  tokenTtlSeconds?: number;
  /** Subscribes to the live feed of stored log records (the SSE tail). */
  onStoredLogs(listener: (logs: DeviceLogRecord[]) => void): () => void;
  now?: () => number;
  loginLimits?: { perUser: number; perAddress: number; windowMs: number };
  /**
   * Seals a provisioned account's password with the credentials key the
   * transport nodes open it with (CredentialCipher.encrypt). Absent: the
   * /devices/{imei}/accounts routes answer 503.
   */
  sealSecret?: (secret: string, context: string) => string;
}

export interface AdminApi {
  handler: OpsHandler;
  close(): void;
}

interface Ctx {
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  params: Record<string, string>;
  user: Principal;
  address: string;
}

type Who = 'public' | AdminRole[];
interface Route {
  method: string;
  pattern: RegExp;
  keys: string[];
  who: Who;
  handler: (ctx: Ctx) => Promise<void> | void;
}

const ALL: AdminRole[] = ['admin', 'operator', 'viewer'];
const STAFF: AdminRole[] = ['admin', 'operator'];
const ADMIN: AdminRole[] = ['admin'];

/** API view: the registry's `profile` is the service profile. */
function deviceView(d: StoredDevice): Record<string, unknown> {
  const { profile, ...rest } = d;
  return profile === undefined ? rest : { ...rest, serviceProfile: profile };
}

const REF_FIELDS = [
  ['operator', 'operators'],
  ['operatorProfile', 'operator-profiles'],
  ['serviceProfile', 'service-profiles'],
  ['model', 'capabilities'],
] as const;

function iso(ms: number | undefined): string {
  return ms === undefined ? '' : new Date(ms).toISOString();
}

function xmlEscape(s: string): string {
  return s.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export function createAdminApi(o: AdminApiOptions): AdminApi {
  const { registry, records, monitor, bus, logger } = o;
  const now = o.now ?? Date.now;
  const tokens = new TokenIssuer(o.jwtKey, o.tokenTtlSeconds ?? 12 * 3600, now);
  const limiter = new LoginLimiter(o.loginLimits, now);
  const routes: Route[] = [];
  const streams = new Set<ServerResponse>();

  const route = (method: string, path: string, who: Who, handler: Route['handler']) => {
    const keys: string[] = [];
    const pattern = new RegExp(
      '^' +
        path.replace(/[.]/g, '\\.').replace(/:(\w+)/g, (_, k: string) => {
          keys.push(k);
          return '([^/]+)';
        }) +
        '$',
    );
    routes.push({ method, pattern, keys, who, handler });
  };

  const audit = async (ctx: Ctx, action: string, target: string, before?: unknown, after?: unknown) => {
    await records.addAudit({
      actor: ctx.user.name,
      role: ctx.user.role,
      address: ctx.address,
      action,
      target,
      ...(before === undefined ? {} : { before }),
      ...(after === undefined ? {} : { after }),
    });
  };

  const refExists = (kind: string, id: string) => registry.getRef(kind, id) !== undefined;

  /** References a device makes must name existing records. */
  const checkRefs = (d: Record<string, unknown>) => {
    for (const [field, kind] of REF_FIELDS) {
      const v = d[field];
      if (typeof v === 'string' && !refExists(kind, v))
        throw new GatewayError('registry.invalid_field', `${field} ${v} is not defined (see /${kind})`, {
          field,
        });
    }
  };

  const deviceOr404 = (imei: string): StoredDevice => {
    const d = registry.getDevice(imei);
    if (!d) throw new GatewayError('registry.not_found', `no device with IMEI ${imei}`, { field: 'imei' });
    return d;
  };

  // ---- open ---------------------------------------------------------------

  route('GET', '/openapi.json', 'public', ({ res }) => sendJson(res, 200, openApiDocument()));

  route('POST', '/auth/login', 'public', async (ctx) => {
    const body = parse(S.LoginBody, await readJson(ctx.req));
    limiter.check(body.name, ctx.address);
    const user = await registry.verifyAdminPassword(body.name, body.password);
    if (!user) {
      limiter.failed(body.name, ctx.address);
      throw new GatewayError('api.unauthorized', 'wrong name or password');
    }
    limiter.succeeded(body.name);
    const { token, expiresAt } = tokens.issue(user);
    sendJson(ctx.res, 200, { token, expiresAt, user: { name: user.name, role: user.role } });
  });

  route('GET', '/auth/me', ALL, ({ res, user }) => sendJson(res, 200, user));

  // ---- users ----------------------------------------------------------------

  route('GET', '/users', ADMIN, ({ res }) => sendJson(res, 200, { items: registry.listAdminUsers() }));
  route('POST', '/users', ADMIN, async (ctx) => {
    const body = parse(S.NewAdminUser, await readJson(ctx.req));
    const user = await registry.addAdminUser(body);
    await audit(ctx, 'user.create', `user:${user.name}`, undefined, user);
    sendJson(ctx.res, 201, user);
  });
  route('DELETE', '/users/:name', ADMIN, async (ctx) => {
    const name = ctx.params.name;
    if (name === ctx.user.name) throw badInput('you cannot remove yourself', 'name');
    const before = registry.getAdminUser(name);
    if (!before) throw new GatewayError('registry.not_found', `no admin user ${name}`, { field: 'name' });
    await registry.removeAdminUser(name);
    await audit(ctx, 'user.remove', `user:${name}`, before);
    ctx.res.writeHead(204).end();
  });
  route('PUT', '/users/:name/role', ADMIN, async (ctx) => {
    const name = ctx.params.name;
    // An admin who acts is an admin afterwards: the console can never lose its last admin this way.
    if (name === ctx.user.name) throw badInput('you cannot change your own role', 'name');
    const body = parse(S.RoleBody, await readJson(ctx.req));
    const { before, after } = await registry.setAdminRole(name, body.role);
    await audit(ctx, 'user.role', `user:${name}`, before, after);
    sendJson(ctx.res, 200, after);
  });
  route('PUT', '/users/:name/password', ALL, async (ctx) => {
    const name = ctx.params.name;
    if (ctx.user.role !== 'admin' && ctx.user.name !== name)
      throw new GatewayError('api.forbidden', 'only an admin may set another user’s password');
    const body = parse(S.PasswordBody, await readJson(ctx.req));
    await registry.setAdminPassword(name, body.password);
    await audit(ctx, 'user.password', `user:${name}`);
    sendJson(ctx.res, 200, { ok: true });
  });

  // ---- devices ----------------------------------------------------------------

  const deviceFilter = (q: ReturnType<typeof S.DeviceListQuery.parse>) => (d: StoredDevice) =>
    (q.imsi === undefined || (d.imsi ?? '').startsWith(q.imsi)) &&
    (q.operatorProfile === undefined || d.operatorProfile === q.operatorProfile) &&
    (q.serviceProfile === undefined || d.profile === q.serviceProfile) &&
    (q.profile === undefined || d.profile === q.profile || d.operatorProfile === q.profile) &&
    (q.model === undefined || d.model === q.model);

  /**
   * IMEI order over the IMEI range; with an IMSI prefix (and no IMEI prefix),
   * IMSI order from the IMSI index, `after` then being the last IMEI seen.
   */
  function* searchDevices(q: {
    imei?: string | undefined;
    imsi?: string | undefined;
    operator?: string | undefined;
    status?: 'enabled' | 'disabled' | undefined;
    after?: string | undefined;
  }): Generator<StoredDevice> {
    if (q.imsi && !q.imei) {
      let skipping = q.after !== undefined;
      for (const d of registry.iterateDevicesByImsi(q.imsi)) {
        if (skipping) {
          if (d.imei === q.after) skipping = false;
          continue;
        }
        if ((q.operator && d.operator !== q.operator) || (q.status && d.status !== q.status)) continue;
        yield d;
      }
      return;
    }
    yield* registry.iterateDevices({
      ...(q.operator ? { operator: q.operator } : {}),
      ...(q.status ? { status: q.status } : {}),
      ...(q.imei ? { prefix: q.imei } : {}),
      ...(q.after ? { after: q.after } : {}),
    });
  }

  route('GET', '/devices', STAFF, ({ res, url }) => {
    const q = parse(S.DeviceListQuery, queryObject(url), 'query');
    const match = deviceFilter(q);
    const items: StoredDevice[] = [];
    let more = false;
    for (const d of searchDevices(q)) {
      if (!match(d)) continue;
      if (items.length === q.limit) {
        more = true;
        break;
      }
      items.push(d);
    }
    const filtered = [
      'imei',
      'imsi',
      'operator',
      'operatorProfile',
      'serviceProfile',
      'profile',
      'model',
      'status',
    ].some((k) => q[k as keyof typeof q] !== undefined);
    sendJson(res, 200, {
      items: items.map(deviceView),
      ...(more ? { next: items[items.length - 1].imei } : {}),
      ...(filtered ? {} : { total: registry.deviceTotal() }),
    });
  });

  route('POST', '/devices', STAFF, async (ctx) => {
    const body = parse(S.NewDevice, await readJson(ctx.req));
    checkRefs(body);
    const { device, secret } = await registry.addDevice({
      imei: body.imei,
      operator: body.operator,
      ...(body.imsi ? { imsi: body.imsi } : {}),
      ...(body.serviceProfile ? { profile: body.serviceProfile } : {}),
      ...(body.operatorProfile ? { operatorProfile: body.operatorProfile } : {}),
      ...(body.model ? { model: body.model } : {}),
      ...(body.status ? { status: body.status } : {}),
    });
    await audit(ctx, 'device.create', `device:${device.imei}`, undefined, deviceView(device));
    sendJson(ctx.res, 201, { device: deviceView(device), secret });
  });

  route('POST', '/devices/import', STAFF, async (ctx) => {
    const q = parse(S.ImportQuery, queryObject(ctx.url), 'query');
    const text = (await readBody(ctx.req, IMPORT_MAX_BYTES)).toString('utf8');
    const { rows, rejected } = readImportCsv(text);
    const unreadable = rejected.length;
    // References and existing IMEIs are checked here so that a dry run shows every rejection.
    const known = new Map<string, Set<string>>();
    for (const [, kind] of REF_FIELDS) known.set(kind, new Set(registry.listRefs(kind).map((r) => r.id)));
    const seen = new Map<string, number | undefined>();
    const good: ImportRow[] = [];
    for (const row of rows) {
      const problem = importRowProblem(row);
      if (problem) {
        rejected.push(problem);
        continue;
      }
      const asApi: Record<string, unknown> = { ...row, serviceProfile: row.profile };
      const missing = REF_FIELDS.find(
        ([f, kind]) => typeof asApi[f] === 'string' && !known.get(kind)?.has(asApi[f] as string),
      );
      if (missing) {
        rejected.push({
          line: row.line,
          imei: row.imei,
          code: 'registry.invalid_field',
          reason: `${missing[0]} ${asApi[missing[0]]} is not defined (see /${missing[1]})`,
          field: missing[0],
        });
        continue;
      }
      if (seen.has(row.imei)) {
        rejected.push({
          line: row.line,
          imei: row.imei,
          code: 'registry.duplicate',
          reason: `IMEI ${row.imei} appears twice in the import (first on line ${seen.get(row.imei)})`,
          field: 'imei',
        });
        continue;
      }
      seen.set(row.imei, row.line);
      if (registry.getDevice(row.imei)) {
        rejected.push({
          line: row.line,
          imei: row.imei,
          code: 'registry.duplicate',
          reason: `IMEI ${row.imei} is already in the registry`,
          field: 'imei',
        });
        continue;
      }
      good.push(row);
    }
    rejected.sort((a, b) => (a.line ?? 0) - (b.line ?? 0));
    const dryRun = q.dryRun === 'true';
    const base = { mode: q.mode, dryRun, total: rows.length + unreadable };
    if (dryRun) {
      sendJson(ctx.res, 200, {
        ...base,
        written: q.mode === 'all-or-nothing' && rejected.length > 0 ? 0 : good.length,
        rejected,
        secrets: [],
      });
      return;
    }
    if (q.mode === 'all-or-nothing' && rejected.length > 0) {
      const result = { ...base, written: 0, rejected, secrets: [] };
      sendApiError(
        ctx.res,
        new GatewayError('registry.import_rejected', `${rejected.length} rows rejected; nothing was written`),
        logger,
        { result },
      );
      return;
    }
    const r = await registry.importDevices(good, { mode: q.mode });
    const allRejected = [...rejected, ...r.rejected].sort((a, b) => (a.line ?? 0) - (b.line ?? 0));
    await audit(ctx, 'device.import', `devices:${r.written}`, undefined, {
      mode: q.mode,
      total: base.total,
      written: r.written,
      rejected: allRejected.length,
      imeis: r.secrets.slice(0, 1000).map((s) => s.imei),
    });
    sendJson(ctx.res, 200, { ...base, written: r.written, rejected: allRejected, secrets: r.secrets });
  });

  route('GET', '/devices/export.csv', STAFF, async ({ res, url }) => {
    const q = parse(S.DeviceListQuery.omit({ limit: true, after: true }), queryObject(url), 'query');
    const match = deviceFilter({ ...q, limit: 1 });
    res.writeHead(200, {
      'content-type': 'text/csv; charset=utf-8',
      'content-disposition': 'attachment; filename="devices.csv"',
      'cache-control': 'no-store',
    });
    const columns = [
      'imei',
      'imsi',
      'operator',
      'operatorProfile',
      'serviceProfile',
      'model',
      'status',
      'createdAt',
      'lastSeenAt',
    ];
    let chunk = csvLine(columns);
    for (const d of searchDevices(q)) {
      if (!match(d)) continue;
      chunk += csvLine([
        d.imei,
        d.imsi,
        d.operator,
        d.operatorProfile,
        d.profile,
        d.model,
        d.status,
        iso(d.createdAt),
        iso(d.lastSeenAt),
      ]);
      if (chunk.length > 64 * 1024) {
        if (!res.write(chunk)) await new Promise((r) => res.once('drain', r));
        chunk = '';
      }
    }
    res.end(chunk);
  });

  route('GET', '/devices/:imei', STAFF, ({ res, params }) =>
    sendJson(res, 200, deviceView(deviceOr404(params.imei))),
  );

  route('PATCH', '/devices/:imei', STAFF, async (ctx) => {
    const before = deviceOr404(ctx.params.imei);
    const body = parse(S.DevicePatch, (await readJson(ctx.req)) ?? {});
    checkRefs(body);
    const { serviceProfile, ...rest } = body;
    const after = await registry.updateDevice(ctx.params.imei, {
      ...rest,
      ...(serviceProfile === undefined ? {} : { profile: serviceProfile }),
    });
    await audit(ctx, 'device.update', `device:${after.imei}`, deviceView(before), deviceView(after));
    sendJson(ctx.res, 200, deviceView(after));
  });

  /**
   * Ends the device's live session, wherever it is, once the registry no longer
   * lets it in (disabled, removed, new secret): an operator disabling a stolen
   * handset expects it off the gateway now, not at its next reconnect. Best
   * effort: a device without a session has nothing to end (bus.no_responders).
   */
  const revoke = async (imei: string, code: 'auth.disabled' | 'auth.unknown_device' | 'auth.bad_secret') => {
    try {
      await bus.request(
        Subjects.device(imei),
        { type: 'revoke', code, reason: `The device's access was changed by an administrator (${code}).` },
        { timeoutMs: 3000 },
      );
    } catch (err) {
      const c = (err as GatewayError).code;
      if (c !== 'bus.no_responders')
        logger.warn({ imei, code: c }, 'could not end the session of a revoked device');
    }
  };

  route('DELETE', '/devices/:imei', STAFF, async (ctx) => {
    const before = deviceOr404(ctx.params.imei);
    await registry.removeDevice(ctx.params.imei);
    await revoke(before.imei, 'auth.unknown_device');
    await audit(ctx, 'device.remove', `device:${before.imei}`, deviceView(before));
    ctx.res.writeHead(204).end();
  });

  for (const status of ['enable', 'disable'] as const) {
    route('POST', `/devices/:imei/${status}`, STAFF, async (ctx) => {
      const before = deviceOr404(ctx.params.imei);
      const after = await registry.setStatus(ctx.params.imei, status === 'enable' ? 'enabled' : 'disabled');
      if (status === 'disable') await revoke(after.imei, 'auth.disabled');
      await audit(ctx, `device.${status}`, `device:${after.imei}`, deviceView(before), deviceView(after));
      sendJson(ctx.res, 200, deviceView(after));
    });
  }

  route('POST', '/devices/:imei/reset-secret', STAFF, async (ctx) => {
    deviceOr404(ctx.params.imei);
    const { device, secret } = await registry.resetSecret(ctx.params.imei);
    await revoke(device.imei, 'auth.bad_secret');
    await audit(ctx, 'device.reset_secret', `device:${device.imei}`);
    sendJson(ctx.res, 200, { device: deviceView(device), secret });
  });

  // ---- provisioned accounts: credentials for the presets of the device's service profile ----

  /** What the API shows and audits of a provisioned account: never the secret. */
  const accountView = (a: ProvisionedAccount) => {
    const { secret: _secret, ...rest } = a;
    return rest;
  };

  route('GET', '/devices/:imei/accounts', STAFF, ({ res, params }) => {
    deviceOr404(params.imei);
    sendJson(res, 200, { items: registry.listDeviceAccounts(params.imei).map(accountView) });
  });

  route('PUT', '/devices/:imei/accounts/:label', STAFF, async (ctx) => {
    const { imei, label } = ctx.params;
    deviceOr404(imei);
    const body = parse(S.DeviceAccountBody, await readJson(ctx.req));
    if (!o.sealSecret)
      throw new GatewayError('request.unavailable', 'this admin node cannot seal credentials', {
        retryable: true,
      });
    const r = await setDeviceAccount(registry, imei, { ...body, label }, o.sealSecret);
    await audit(
      ctx,
      r.before ? 'device.account.update' : 'device.account.create',
      `device:${imei}/account:${label}`,
      r.before && accountView(r.before),
      accountView(r.after),
    );
    sendJson(ctx.res, r.before ? 200 : 201, accountView(r.after));
  });

  route('DELETE', '/devices/:imei/accounts/:label', STAFF, async (ctx) => {
    const { imei, label } = ctx.params;
    deviceOr404(imei);
    const before = await registry.removeDeviceAccount(imei, label);
    await audit(ctx, 'device.account.remove', `device:${imei}/account:${label}`, accountView(before));
    ctx.res.writeHead(204).end();
  });

  const logKinds = (value: string | undefined): DeviceLogKind[] | undefined => {
    if (value === undefined || value === '') return undefined;
    const kinds = value.split(',').map((k) => k.trim());
    for (const k of kinds) {
      if (!(S.LOG_KINDS as readonly string[]).includes(k))
        throw badInput(`kind ${JSON.stringify(k)}: one of ${S.LOG_KINDS.join(', ')}`, 'kind');
    }
    return kinds as DeviceLogKind[];
  };

  route('GET', '/devices/:imei/logs', STAFF, ({ res, url, params }) => {
    const q = parse(S.LogQuery, queryObject(url), 'query');
    const from = parseTime(q.from, 'from');
    const to = parseTime(q.to, 'to');
    const kinds = logKinds(q.kind);
    if (q.cursor !== undefined && !/^\d{1,16}\.\d{1,16}$/.test(q.cursor))
      throw badInput('cursor: use the next value of a previous page', 'cursor');
    const page = records.queryLogs(params.imei, {
      limit: q.limit,
      order: q.order,
      ...(from === undefined ? {} : { from }),
      ...(to === undefined ? {} : { to }),
      ...(kinds ? { kinds } : {}),
      ...(q.cursor ? { cursor: q.cursor } : {}),
    });
    sendJson(res, 200, page);
  });

  const openStream = (res: ServerResponse, onClose: () => void) => {
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    res.write(': stream open\n\n');
    streams.add(res);
    const ping = setInterval(() => res.write(': ping\n\n'), 15_000);
    const done = () => {
      clearInterval(ping);
      streams.delete(res);
      onClose();
    };
    res.on('close', done);
  };

  route('GET', '/devices/:imei/logs/stream', STAFF, ({ res, params, url }) => {
    const kinds = logKinds(url.searchParams.get('kind') ?? undefined);
    const imei = params.imei;
    const stop = o.onStoredLogs((logs) => {
      for (const r of logs) {
        if (r.imei !== imei || (kinds && !kinds.includes(r.kind))) continue;
        res.write(`event: log\ndata: ${JSON.stringify(r)}\n\n`);
      }
    });
    openStream(res, stop);
  });

  // ---- reference data -----------------------------------------------------------

  const refView = (r: {
    id: string;
    revision: number;
    createdAt: number;
    updatedAt: number;
    data: Record<string, unknown>;
  }) => ({
    id: r.id,
    ...r.data,
    revision: r.revision,
    createdAt: r.createdAt,
    updatedAt: r.updatedAt,
  });

  /** Who refers to a reference record (a device or another record); undefined when nobody. */
  const referrer = (kind: S.RefKind, id: string): string | undefined => {
    if (kind === 'operators') {
      const p = registry.listRefs('operator-profiles').find((r) => r.data.operator === id);
      if (p) return `operator profile ${p.id}`;
    }
    const field = REF_FIELDS.find(([, k]) => k === kind)?.[0];
    if (!field) return undefined;
    const it = kind === 'operators' ? registry.iterateDevices({ operator: id }) : registry.iterateDevices();
    for (const d of it) {
      const v = field === 'serviceProfile' ? d.profile : d[field];
      if (v === id) return `device ${d.imei}`;
    }
    return undefined;
  };

  for (const kind of Object.keys(S.REF_KINDS) as S.RefKind[]) {
    const schema = S.REF_KINDS[kind];
    route('GET', `/${kind}`, STAFF, ({ res }) =>
      sendJson(res, 200, { items: registry.listRefs(kind).map(refView) }),
    );
    route('GET', `/${kind}/:id`, STAFF, ({ res, params }) => {
      const r = registry.getRef(kind, params.id);
      if (!r) throw new GatewayError('registry.not_found', `no ${kind} ${params.id}`, { field: 'id' });
      sendJson(res, 200, refView(r));
    });
    const checkBodyRefs = (data: Record<string, unknown>) => {
      // A preset is named by its label (devices' provisioned accounts refer to it): one label, one preset.
      if (kind === 'service-profiles' && Array.isArray(data.accounts)) {
        const labels = (data.accounts as Array<{ label: string }>).map((a) => a.label);
        const twice = labels.find((l, i) => labels.indexOf(l) !== i);
        if (twice !== undefined)
          throw badInput(`accounts: the label ${JSON.stringify(twice)} is used twice`, 'accounts');
      }
      if (kind === 'operator-profiles' && !refExists('operators', data.operator as string))
        throw new GatewayError(
          'registry.invalid_field',
          `operator ${data.operator} is not defined (see /operators)`,
          { field: 'operator' },
        );
    };
    route('POST', `/${kind}`, ADMIN, async (ctx) => {
      const body = parse(schema, await readJson(ctx.req)) as Record<string, unknown> & { id: string };
      checkBodyRefs(body);
      const { id, ...data } = body;
      const r = await registry.putRef(kind, id, data, { mode: 'create' });
      if (!r) throw new GatewayError('internal');
      await audit(ctx, `${kind}.create`, `${kind}:${id}`, undefined, refView(r.after));
      sendJson(ctx.res, 201, refView(r.after));
    });
    route('PUT', `/${kind}/:id`, ADMIN, async (ctx) => {
      const raw = (await readJson(ctx.req)) as Record<string, unknown> | undefined;
      const { revision, createdAt: _c, updatedAt: _u, ...rest } = raw ?? {};
      if (revision !== undefined && (typeof revision !== 'number' || !Number.isInteger(revision)))
        throw badInput('revision: a whole number', 'revision');
      const body = parse(schema, { id: ctx.params.id, ...rest }) as Record<string, unknown> & { id: string };
      if (body.id !== ctx.params.id) throw badInput('id: must match the path', 'id');
      checkBodyRefs(body);
      const { id, ...data } = body;
      const r = await registry.putRef(kind, id, data, {
        mode: 'replace',
        ...(typeof revision === 'number' ? { revision } : {}),
      });
      if (!r)
        throw new GatewayError(
          'api.conflict',
          `${kind} ${id} changed meanwhile (revision ${revision} is stale)`,
          { field: 'revision' },
        );
      await audit(ctx, `${kind}.update`, `${kind}:${id}`, r.before && refView(r.before), refView(r.after));
      sendJson(ctx.res, 200, refView(r.after));
    });
    route('DELETE', `/${kind}/:id`, ADMIN, async (ctx) => {
      if (!registry.getRef(kind, ctx.params.id))
        throw new GatewayError('registry.not_found', `no ${kind} ${ctx.params.id}`, { field: 'id' });
      const by = referrer(kind, ctx.params.id);
      if (by)
        throw new GatewayError('api.conflict', `${kind} ${ctx.params.id} is still used by ${by}`, {
          field: 'id',
        });
      const before = await registry.removeRef(kind, ctx.params.id);
      await audit(ctx, `${kind}.remove`, `${kind}:${ctx.params.id}`, refView(before));
      ctx.res.writeHead(204).end();
    });
  }

  // ---- reports ------------------------------------------------------------------

  route('GET', '/reports/usage', ALL, ({ res, url }) => {
    const q = parse(S.UsageQuery, queryObject(url), 'query');
    const step = q.granularity === 'hour' ? HOUR_MS : DAY_MS;
    const toRaw = parseTime(q.to, 'to') ?? now();
    const fromRaw = parseTime(q.from, 'from') ?? toRaw - (q.granularity === 'hour' ? DAY_MS : 30 * DAY_MS);
    const from = Math.floor(fromRaw / step) * step;
    const to = Math.max(Math.ceil(toRaw / step) * step, from + step);
    if (fromRaw >= toRaw) throw badInput('from: must be before to', 'from');
    const buckets = (to - from) / step;
    const max = q.granularity === 'hour' ? 24 * 93 : 800;
    if (buckets > max) throw badInput(`to: at most ${max} ${q.granularity}s per report`, 'to');
    const { rows, totals } = records.usageReport({
      from,
      to,
      granularity: q.granularity,
      groupBy: q.groupBy,
      ...(q.service ? { service: q.service } : {}),
      ...(q.operator ? { operator: q.operator } : {}),
    });
    const report = {
      from: iso(from),
      to: iso(to),
      granularity: q.granularity,
      groupBy: q.groupBy,
      filters: {
        ...(q.service ? { service: q.service } : {}),
        ...(q.operator ? { operator: q.operator } : {}),
      },
      rows: rows.map((r) => ({ ...r, bucket: iso(r.bucket) })),
      totals,
    };
    const name = `usage-${iso(from).slice(0, 13)}-${iso(to).slice(0, 13)}`.replace(/:/g, '');
    const counters = ['logins', 'logouts', 'messagesIn', 'messagesOut', 'bytesIn', 'bytesOut'] as const;
    const group = q.groupBy === 'none' ? [] : [q.groupBy];
    if (q.format === 'csv') {
      const lines = [csvLine(['bucket', ...group, ...counters])];
      for (const r of report.rows) {
        lines.push(
          csvLine([
            r.bucket,
            ...group.map((g) => (r as unknown as Record<string, string | undefined>)[g] ?? ''),
            ...counters.map((c) => r[c]),
          ]),
        );
      }
      sendText(res, 200, 'text/csv; charset=utf-8', lines.join(''), `${name}.csv`);
    } else if (q.format === 'xml') {
      const attrs = `from="${report.from}" to="${report.to}" granularity="${q.granularity}" groupBy="${q.groupBy}"${q.service ? ` service="${xmlEscape(q.service)}"` : ''}${q.operator ? ` operator="${xmlEscape(q.operator)}"` : ''}`;
      const out = [`<?xml version="1.0" encoding="UTF-8"?>\n<usageReport ${attrs}>\n`];
      for (const r of report.rows) {
        const g = group
          .map((k) => ` ${k}="${xmlEscape((r as unknown as Record<string, string | undefined>)[k] ?? '')}"`)
          .join('');
        out.push(
          `  <row bucket="${r.bucket}"${g}>${counters.map((c) => `<${c}>${r[c]}</${c}>`).join('')}</row>\n`,
        );
      }
      out.push(
        `  <totals>${counters.map((c) => `<${c}>${totals[c]}</${c}>`).join('')}</totals>\n</usageReport>\n`,
      );
      sendText(res, 200, 'application/xml; charset=utf-8', out.join(''), `${name}.xml`);
    } else sendJson(res, 200, report);
  });

  // ---- monitor -------------------------------------------------------------------

  route('GET', '/nodes', ALL, ({ res }) => sendJson(res, 200, { items: monitor.nodes(), at: now() }));
  route('GET', '/nodes/stream', ALL, ({ res }) => {
    const send = () =>
      res.write(`event: nodes\ndata: ${JSON.stringify({ items: monitor.nodes(), at: now() })}\n\n`);
    const sendAlarms = () =>
      res.write(`event: alarms\ndata: ${JSON.stringify({ items: monitor.alarmList() })}\n\n`);
    const timer = setInterval(send, 2000);
    const stopAlarms = monitor.onAlarmsChanged(sendAlarms);
    openStream(res, () => {
      clearInterval(timer);
      stopAlarms();
    });
    send();
    sendAlarms();
  });
  route('POST', '/nodes/:id/drain', ADMIN, async (ctx) => {
    const body = parse(S.DrainBody, (await readJson(ctx.req)) ?? {});
    const id = ctx.params.id;
    if (!monitor.isLive(id)) throw new GatewayError('api.not_found', `no live node ${id}`, { field: 'id' });
    await audit(ctx, 'node.drain', `node:${id}`, undefined, {
      reason: body.reason ?? 'asked from the admin API',
    });
    bus.publish(Subjects.drain(id), {
      reason: body.reason ?? `asked by ${ctx.user.name} from the admin API`,
    });
    sendJson(ctx.res, 202, { ok: true });
  });
  route('GET', '/alarms', ALL, ({ res, url }) => {
    const active = url.searchParams.get('active');
    if (active !== null && active !== 'true' && active !== 'false')
      throw badInput('active: true or false', 'active');
    sendJson(res, 200, { items: monitor.alarmList(active === 'true') });
  });

  // ---- audit ----------------------------------------------------------------------

  route('GET', '/audit', STAFF, ({ res, url }) => {
    const q = parse(S.AuditQuery, queryObject(url), 'query');
    const from = parseTime(q.from, 'from');
    const to = parseTime(q.to, 'to');
    if (q.cursor !== undefined && !/^\d{1,16}\.\d{1,16}$/.test(q.cursor))
      throw badInput('cursor: use the next value of a previous page', 'cursor');
    sendJson(
      res,
      200,
      records.queryAudit({
        limit: q.limit,
        ...(from === undefined ? {} : { from }),
        ...(to === undefined ? {} : { to }),
        ...(q.actor ? { actor: q.actor } : {}),
        ...(q.action ? { action: q.action } : {}),
        ...(q.target ? { target: q.target } : {}),
        ...(q.cursor ? { cursor: q.cursor } : {}),
      }),
    );
  });

  // ---- dispatch ----------------------------------------------------------------------

  const authenticate = (req: IncomingMessage, url: URL): Principal => {
    const header = req.headers.authorization;
    let token: string | undefined;
    if (typeof header === 'string' && /^Bearer\s+/i.test(header))
      token = header.replace(/^Bearer\s+/i, '').trim();
    token ??= url.searchParams.get('access_token') ?? undefined;
    if (!token) throw new GatewayError('api.unauthorized', 'log in and send Authorization: Bearer <token>');
    const { name } = tokens.verify(token);
    const user = registry.getAdminUser(name);
    // A removed user's tokens stop working at once; a changed role applies at once.
    if (!user) throw new GatewayError('api.unauthorized', 'the user of this token no longer exists');
    return { name: user.name, role: user.role };
  };

  const handler: OpsHandler = async (req, res, url) => {
    if (url.pathname !== API_PREFIX && !url.pathname.startsWith(`${API_PREFIX}/`)) return false;
    try {
      const path = url.pathname.slice(API_PREFIX.length) || '/';
      const method = req.method === 'HEAD' ? 'GET' : (req.method ?? 'GET');
      let found: { route: Route; params: Record<string, string> } | undefined;
      for (const r of routes) {
        if (r.method !== method) continue;
        const m = r.pattern.exec(path);
        if (!m) continue;
        const params: Record<string, string> = {};
        r.keys.forEach((k, i) => {
          params[k] = decodeURIComponent(m[i + 1]);
        });
        found = { route: r, params };
        break;
      }
      if (!found) throw new GatewayError('api.not_found', `no route for ${req.method} ${url.pathname}`);
      const address = req.socket.remoteAddress ?? 'unknown';
      let user: Principal = { name: '', role: 'viewer' };
      if (found.route.who !== 'public') {
        user = authenticate(req, url);
        if (!found.route.who.includes(user.role))
          throw new GatewayError('api.forbidden', `the ${user.role} role may not ${req.method} ${path}`);
      }
      await found.route.handler({ req, res, url, params: found.params, user, address });
    } catch (err) {
      sendApiError(res, err, logger);
    }
    return true;
  };

  return {
    handler,
    close() {
      for (const res of streams) res.end();
      streams.clear();
    },
  };
}

// ---- CSV import ----------------------------------------------------------------

const IMPORT_COLUMNS = new Set([
  'imei',
  'imsi',
  'operator',
  'operatorProfile',
  'serviceProfile',
  'profile',
  'model',
  'status',
  'secret',
  'createdAt',
  'lastSeenAt',
]);

function readImportCsv(text: string): { rows: ImportRow[]; rejected: ImportRejection[] } {
  const records = parseCsv(text);
  const header = records.shift();
  if (!header) throw badInput('the CSV is empty: a header line is required', 'body');
  const columns = header.fields.map((f) => f.trim());
  const unknown = columns.filter((c) => !IMPORT_COLUMNS.has(c));
  if (unknown.length > 0)
    throw badInput(`line 1: unknown column ${unknown.map((c) => JSON.stringify(c)).join(', ')}`, unknown[0]);
  for (const need of ['imei', 'operator'])
    if (!columns.includes(need)) throw badInput(`line 1: the header must name ${need}`, need);
  if (new Set(columns).size !== columns.length) throw badInput('line 1: a column is named twice', 'body');
  if (columns.includes('profile') && columns.includes('serviceProfile'))
    throw badInput('line 1: profile and serviceProfile are the same column', 'profile');
  const rows: ImportRow[] = [];
  const rejected: ImportRejection[] = [];
  const idx = (name: string) => columns.indexOf(name);
  for (const record of records) {
    if (record.fields.length !== columns.length) {
      rejected.push({
        line: record.line,
        code: 'registry.invalid_field',
        reason: `expected ${columns.length} fields, found ${record.fields.length}`,
      });
      continue;
    }
    const get = (name: string): string | undefined => {
      const i = idx(name);
      const v = i < 0 ? undefined : record.fields[i].trim();
      return v === '' ? undefined : v;
    };
    const row: ImportRow = { line: record.line, imei: get('imei') ?? '', operator: get('operator') ?? '' };
    const imsi = get('imsi');
    const profile = get('serviceProfile') ?? get('profile');
    const operatorProfile = get('operatorProfile');
    const model = get('model');
    const status = get('status');
    const secret = get('secret');
    if (imsi !== undefined) row.imsi = imsi;
    if (profile !== undefined) row.profile = profile;
    if (operatorProfile !== undefined) row.operatorProfile = operatorProfile;
    if (model !== undefined) row.model = model;
    if (status !== undefined) row.status = status as ImportRow['status'];
    if (secret !== undefined) row.secret = secret;
    rows.push(row);
  }
  return { rows, rejected };
}

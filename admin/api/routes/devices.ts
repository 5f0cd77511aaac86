/**
 * Devices: search, provision, change, enable and disable, new secrets, and
 * CSV export in the one column set the CLI and the UI use too
 * (server/store/device-csv.ts); imports are in imports.ts.
 */
import { GatewayError } from '../../../device-protocol/errors.ts';
import {
  type Device as StoredDevice,
  DEVICE_CSV_COLUMNS,
  deviceAuditView,
  deviceCsvHeader,
  deviceCsvLine,
  type Registry,
  Subjects,
} from '../../../server/index.ts';
import { type ApiServices, audit, failure, json, route, STAFF } from '../context.ts';
import { sendJson } from '../http-util.ts';
import * as S from '../schemas.ts';

export const imei = 'Device IMEI (15 digits)';

/** API view: the registry's `profile` is the service profile (as in the audit log). */
export const deviceView = deviceAuditView;

/** The reference fields of a device (API names) and the reference data they name. */
export const REF_FIELDS = [
  ['operator', 'operators'],
  ['operatorProfile', 'operator-profiles'],
  ['serviceProfile', 'service-profiles'],
  ['model', 'capabilities'],
] as const;

export function deviceOr404(registry: Registry, imei: string): StoredDevice {
  const d = registry.getDevice(imei);
  if (!d) throw new GatewayError('registry.not_found', `no device with IMEI ${imei}`, { field: 'imei' });
  return d;
}

/** References a device makes must name existing records. */
function checkRefs(registry: Registry, d: Record<string, unknown>): void {
  for (const [field, kind] of REF_FIELDS) {
    const v = d[field];
    if (typeof v === 'string' && registry.getRef(kind, v) === undefined)
      throw new GatewayError('registry.invalid_field', `${field} ${v} is not defined (see /${kind})`, {
        field,
      });
  }
}

type ListQuery = Omit<ReturnType<typeof S.DeviceListQuery.parse>, 'limit' | 'after'> & { after?: string };

const deviceFilter = (q: ListQuery) => (d: StoredDevice) =>
  (q.imsi === undefined || (d.imsi ?? '').startsWith(q.imsi)) &&
  (q.operatorProfile === undefined || d.operatorProfile === q.operatorProfile) &&
  (q.serviceProfile === undefined || d.profile === q.serviceProfile) &&
  (q.profile === undefined || d.profile === q.profile || d.operatorProfile === q.profile) &&
  (q.model === undefined || d.model === q.model);

/**
 * IMEI order over the IMEI range; with an IMSI prefix (and no IMEI prefix),
 * IMSI order from the IMSI index, `after` then being the last IMEI seen.
 */
function* searchDevices(registry: Registry, q: ListQuery): Generator<StoredDevice> {
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

/**
 * Ends the device's live session, wherever it is, once the registry no longer
 * lets it in (disabled, removed, new secret): an operator disabling a stolen
 * handset expects it off the gateway now, not at its next reconnect. Best
 * effort: a device without a session has nothing to end (bus.no_responders).
 */
async function revoke(
  { bus, logger }: ApiServices,
  imei: string,
  code: 'auth.disabled' | 'auth.unknown_device' | 'auth.bad_secret',
): Promise<void> {
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
}

const csvText = { description: 'CSV', text: ['text/csv'] };

export const deviceRoutes = [
  route({
    method: 'GET',
    path: '/devices',
    roles: STAFF,
    summary: 'Search devices, IMEI order, paged with `after`',
    query: S.DeviceListQuery,
    responses: { '200': json(S.DeviceList) },
    handle({ res, query: q, services: { registry } }) {
      const match = deviceFilter(q);
      const items: StoredDevice[] = [];
      let more = false;
      for (const d of searchDevices(registry, q)) {
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
      const last = items.at(-1);
      sendJson(res, 200, {
        items: items.map(deviceView),
        ...(more && last ? { next: last.imei } : {}),
        ...(filtered ? {} : { total: registry.deviceTotal() }),
      });
    },
  }),
  route({
    method: 'POST',
    path: '/devices',
    roles: STAFF,
    summary: 'Provision a device (audited); the secret is in this answer only',
    body: S.NewDevice,
    responses: {
      '201': json(S.DeviceWithSecret, 'Created'),
      '409': failure('IMEI exists (registry.duplicate)'),
    },
    async handle(ctx) {
      const { body } = ctx;
      const { registry } = ctx.services;
      checkRefs(registry, body);
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
    },
  }),
  route({
    method: 'GET',
    path: '/devices/export.csv',
    roles: STAFF,
    summary: `Every device as CSV (${DEVICE_CSV_COLUMNS.join(',')}); accepts the list filters`,
    query: S.DeviceListQuery.omit({ limit: true, after: true }),
    responses: { '200': csvText },
    async handle({ res, query: q, services: { registry } }) {
      const match = deviceFilter(q);
      res.writeHead(200, {
        'content-type': 'text/csv; charset=utf-8',
        'content-disposition': 'attachment; filename="devices.csv"',
        'cache-control': 'no-store',
      });
      let chunk = deviceCsvHeader();
      for (const d of searchDevices(registry, q)) {
        if (!match(d)) continue;
        chunk += deviceCsvLine(d);
        if (chunk.length > 64 * 1024) {
          if (!res.write(chunk)) await new Promise((r) => res.once('drain', r));
          chunk = '';
        }
      }
      res.end(chunk);
    },
  }),
  route({
    method: 'GET',
    path: '/devices/{imei}',
    roles: STAFF,
    summary: 'One device',
    params: { imei },
    responses: { '200': json(S.Device) },
    handle: ({ res, params, services }) =>
      sendJson(res, 200, deviceView(deviceOr404(services.registry, params.imei))),
  }),
  route({
    method: 'PATCH',
    path: '/devices/{imei}',
    roles: STAFF,
    summary: 'Change a device (audited)',
    params: { imei },
    body: S.DevicePatch,
    bodyOptional: true,
    responses: { '200': json(S.Device) },
    guard: ({ params, services }) => void deviceOr404(services.registry, params.imei),
    async handle(ctx) {
      const { registry } = ctx.services;
      const before = deviceOr404(registry, ctx.params.imei);
      checkRefs(registry, ctx.body);
      const { serviceProfile, ...rest } = ctx.body;
      const after = await registry.updateDevice(ctx.params.imei, {
        ...rest,
        ...(serviceProfile === undefined ? {} : { profile: serviceProfile }),
      });
      await audit(ctx, 'device.update', `device:${after.imei}`, deviceView(before), deviceView(after));
      sendJson(ctx.res, 200, deviceView(after));
    },
  }),
  route({
    method: 'DELETE',
    path: '/devices/{imei}',
    roles: STAFF,
    summary: 'Remove a device (audited)',
    params: { imei },
    responses: { '204': { description: 'Removed' } },
    async handle(ctx) {
      const { registry } = ctx.services;
      const before = deviceOr404(registry, ctx.params.imei);
      await registry.removeDevice(ctx.params.imei);
      await revoke(ctx.services, before.imei, 'auth.unknown_device');
      await audit(ctx, 'device.remove', `device:${before.imei}`, deviceView(before));
      ctx.res.writeHead(204).end();
    },
  }),
  ...(['enable', 'disable'] as const).map((status) =>
    route({
      method: 'POST',
      path: `/devices/{imei}/${status}`,
      roles: STAFF,
      summary:
        status === 'enable' ? 'Enable (audited)' : 'Disable (audited); the device can no longer log in',
      params: { imei },
      responses: { '200': json(S.Device) },
      async handle(ctx) {
        const { registry } = ctx.services;
        const before = deviceOr404(registry, ctx.params.imei);
        const after = await registry.setStatus(ctx.params.imei, status === 'enable' ? 'enabled' : 'disabled');
        if (status === 'disable') await revoke(ctx.services, after.imei, 'auth.disabled');
        await audit(ctx, `device.${status}`, `device:${after.imei}`, deviceView(before), deviceView(after));
        sendJson(ctx.res, 200, deviceView(after));
      },
    }),
  ),
  route({
    method: 'POST',
    path: '/devices/{imei}/reset-secret',
    roles: STAFF,
    summary: 'New secret (audited), shown once; the old one stops working',
    params: { imei },
    responses: { '200': json(S.DeviceWithSecret) },
    async handle(ctx) {
      const { registry } = ctx.services;
      deviceOr404(registry, ctx.params.imei);
      const { device, secret } = await registry.resetSecret(ctx.params.imei);
      await revoke(ctx.services, device.imei, 'auth.bad_secret');
      await audit(ctx, 'device.reset_secret', `device:${device.imei}`);
      sendJson(ctx.res, 200, { device: deviceView(device), secret });
    },
  }),
];

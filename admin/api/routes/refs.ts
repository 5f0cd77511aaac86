/**
 * Reference data: operators, operator profiles, services, service profiles
 * and capability profiles. Changes are the admin's; a record still named by a
 * device or another record cannot be removed; PUT may carry the revision it
 * read, to refuse a lost update.
 */
import { z } from 'zod';
import { GatewayError } from '../../../device-protocol/errors.ts';
import type { Registry } from '../../../server/index.ts';
import { ADMIN, audit, failure, json, route, STAFF } from '../context.ts';
import { badInput, sendJson } from '../http-util.ts';
import * as S from '../schemas.ts';
import { REF_FIELDS } from './devices.ts';

const LABELS: Record<S.RefKind, string> = {
  operators: 'operators',
  'operator-profiles': 'operator profiles',
  services: 'services',
  'service-profiles': 'service profiles (allowed services, preset accounts, policies)',
  capabilities: 'capability profiles (per device model)',
};

interface StoredRef {
  id: string;
  revision: number;
  createdAt: number;
  updatedAt: number;
  data: Record<string, unknown>;
}

function refView(r: StoredRef) {
  return { id: r.id, ...r.data, revision: r.revision, createdAt: r.createdAt, updatedAt: r.updatedAt };
}

/** Who refers to a reference record (a device or another record); undefined when nobody. */
function referrer(registry: Registry, kind: S.RefKind, id: string): string | undefined {
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
}

function checkBodyRefs(registry: Registry, kind: S.RefKind, data: Record<string, unknown>): void {
  // A preset is named by its label (devices' provisioned accounts refer to it): one label, one preset.
  if (kind === 'service-profiles' && Array.isArray(data.accounts)) {
    const labels = (data.accounts as Array<{ label: string }>).map((a) => a.label);
    const twice = labels.find((l, i) => labels.indexOf(l) !== i);
    if (twice !== undefined)
      throw badInput(`accounts: the label ${JSON.stringify(twice)} is used twice`, 'accounts');
  }
  if (kind === 'operator-profiles' && registry.getRef('operators', data.operator as string) === undefined)
    throw new GatewayError(
      'registry.invalid_field',
      `operator ${data.operator} is not defined (see /operators)`,
      {
        field: 'operator',
      },
    );
}

function notFound(kind: S.RefKind, id: string): GatewayError {
  return new GatewayError('registry.not_found', `no ${kind} ${id}`, { field: 'id' });
}

function refRoutes(kind: S.RefKind) {
  const body = S.REF_KINDS[kind] as z.ZodObject;
  const label = LABELS[kind];
  const stored = body.extend(S.RefMeta.shape);
  /**
   * PUT takes the body of a POST (its id, when given, must be the path's),
   * the revision it read, and the stored form's dates, which it ignores: a
   * record read can be sent back changed.
   */
  const replacement = z
    .object({
      revision: z.number({ error: 'a whole number' }).int({ error: 'a whole number' }).optional(),
      ...body.shape,
      id: (body.shape.id as typeof S.RefId).optional(),
      createdAt: z.unknown().optional(),
      updatedAt: z.unknown().optional(),
    })
    .strict();
  return [
    route({
      method: 'GET',
      path: `/${kind}`,
      roles: STAFF,
      summary: `List ${label}`,
      responses: { '200': json(z.object({ items: z.array(stored) })) },
      handle: ({ res, services }) =>
        sendJson(res, 200, { items: services.registry.listRefs(kind).map(refView) }),
    }),
    route({
      method: 'POST',
      path: `/${kind}`,
      roles: ADMIN,
      summary: `Create one of ${label} (audited)`,
      body,
      responses: {
        '201': json(stored, 'Created'),
        '409': failure('The id exists (registry.duplicate)'),
      },
      async handle(ctx) {
        const { registry } = ctx.services;
        const { id, ...data } = ctx.body as Record<string, unknown> & { id: string };
        checkBodyRefs(registry, kind, ctx.body);
        const r = await registry.putRef(kind, id, data, { mode: 'create' });
        if (!r) throw new GatewayError('internal');
        await audit(ctx, `${kind}.create`, `${kind}:${id}`, undefined, refView(r.after));
        sendJson(ctx.res, 201, refView(r.after));
      },
    }),
    route({
      method: 'GET',
      path: `/${kind}/{id}`,
      roles: STAFF,
      summary: `One of ${label}`,
      params: { id: 'Record id' },
      responses: { '200': json(stored) },
      handle({ res, params, services }) {
        const r = services.registry.getRef(kind, params.id);
        if (!r) throw notFound(kind, params.id);
        sendJson(res, 200, refView(r));
      },
    }),
    route({
      method: 'PUT',
      path: `/${kind}/{id}`,
      roles: ADMIN,
      summary: `Replace one of ${label} (audited); the body's id must match; revision, when given, must be the current one`,
      params: { id: { description: 'Record id', schema: S.RefId } },
      body: replacement,
      responses: {
        '200': json(stored),
        '409': failure('Stale revision (api.conflict)'),
      },
      async handle(ctx) {
        const { revision, createdAt: _c, updatedAt: _u, id = ctx.params.id, ...data } = ctx.body;
        if (id !== ctx.params.id) throw badInput('id: must match the path', 'id');
        const { registry } = ctx.services;
        checkBodyRefs(registry, kind, data);
        const r = await registry.putRef(kind, id, data, {
          mode: 'replace',
          ...(revision === undefined ? {} : { revision }),
        });
        const stale = `${kind} ${id} changed meanwhile (revision ${revision} is stale)`;
        if (!r) throw new GatewayError('api.conflict', stale, { field: 'revision' });
        await audit(ctx, `${kind}.update`, `${kind}:${id}`, r.before && refView(r.before), refView(r.after));
        sendJson(ctx.res, 200, refView(r.after));
      },
    }),
    route({
      method: 'DELETE',
      path: `/${kind}/{id}`,
      roles: ADMIN,
      summary: `Remove one of ${label} (audited); refused while a device or profile refers to it`,
      params: { id: 'Record id' },
      responses: {
        '204': { description: 'Removed' },
        '409': failure('Still referred to (api.conflict)'),
      },
      async handle(ctx) {
        const { registry } = ctx.services;
        const { id } = ctx.params;
        if (!registry.getRef(kind, id)) throw notFound(kind, id);
        const by = referrer(registry, kind, id);
        if (by)
          throw new GatewayError('api.conflict', `${kind} ${id} is still used by ${by}`, { field: 'id' });
        const before = await registry.removeRef(kind, id);
        await audit(ctx, `${kind}.remove`, `${kind}:${id}`, refView(before));
        ctx.res.writeHead(204).end();
      },
    }),
  ];
}

export const refDataRoutes = (Object.keys(S.REF_KINDS) as S.RefKind[]).flatMap(refRoutes);

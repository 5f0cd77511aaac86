/** Admin users: who may use the console, with which role. */
import { z } from 'zod';
import { GatewayError } from '../../../device-protocol/errors.ts';
import { ADMIN, ALL, audit, failure, json, route } from '../context.ts';
import { badInput, sendJson } from '../http-util.ts';
import * as S from '../schemas.ts';

const name = 'User name';

export const userRoutes = [
  route({
    method: 'GET',
    path: '/users',
    roles: ADMIN,
    summary: 'Admin users',
    responses: { '200': json(z.object({ items: z.array(S.AdminUser) })) },
    handle: ({ res, services }) => sendJson(res, 200, { items: services.registry.listAdminUsers() }),
  }),
  route({
    method: 'POST',
    path: '/users',
    roles: ADMIN,
    summary: 'Add an admin user (audited)',
    body: S.NewAdminUser,
    responses: {
      '201': json(S.AdminUser, 'Created'),
      '409': failure('Name taken (registry.duplicate)'),
    },
    async handle(ctx) {
      const user = await ctx.services.registry.addAdminUser(ctx.body);
      await audit(ctx, 'user.create', `user:${user.name}`, undefined, user);
      sendJson(ctx.res, 201, user);
    },
  }),
  route({
    method: 'DELETE',
    path: '/users/{name}',
    roles: ADMIN,
    summary: 'Remove an admin user (audited); not yourself',
    params: { name },
    responses: { '204': { description: 'Removed' } },
    async handle(ctx) {
      const { name } = ctx.params;
      if (name === ctx.user.name) throw badInput('you cannot remove yourself', 'name');
      const { registry } = ctx.services;
      const before = registry.getAdminUser(name);
      if (!before) throw new GatewayError('registry.not_found', `no admin user ${name}`, { field: 'name' });
      await registry.removeAdminUser(name);
      await audit(ctx, 'user.remove', `user:${name}`, before);
      ctx.res.writeHead(204).end();
    },
  }),
  route({
    method: 'PUT',
    path: '/users/{name}/role',
    roles: ADMIN,
    summary: 'Give a user another role (audited); not yourself. It applies from their next request on',
    params: { name },
    body: S.RoleBody,
    responses: { '200': json(S.AdminUser) },
    guard(ctx) {
      // An admin who acts is an admin afterwards: the console can never lose its last admin this way.
      if (ctx.params.name === ctx.user.name) throw badInput('you cannot change your own role', 'name');
    },
    async handle(ctx) {
      const { name } = ctx.params;
      const { before, after } = await ctx.services.registry.setAdminRole(name, ctx.body.role);
      await audit(ctx, 'user.role', `user:${name}`, before, after);
      sendJson(ctx.res, 200, after);
    },
  }),
  route({
    method: 'PUT',
    path: '/users/{name}/password',
    roles: ALL,
    summary: 'Set a password (audited): admins for anyone, every user for themself',
    params: { name },
    body: S.PasswordBody,
    responses: { '200': json(z.object({ ok: z.literal(true) })) },
    guard(ctx) {
      if (ctx.user.role !== 'admin' && ctx.user.name !== ctx.params.name)
        throw new GatewayError('api.forbidden', 'only an admin may set another user’s password');
    },
    async handle(ctx) {
      const { name } = ctx.params;
      await ctx.services.registry.setAdminPassword(name, ctx.body.password);
      await audit(ctx, 'user.password', `user:${name}`);
      sendJson(ctx.res, 200, { ok: true });
    },
  }),
];

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
    summary:
      'Give a user another role (audited); not yourself. Their tokens stop working: they log in again, with the new role',
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
    summary:
      "Set a password (audited): admins for anyone, every user for themself with their current one (oldPassword). The user's tokens stop working; changing your own answers a new token",
    params: { name },
    body: S.PasswordBody,
    responses: {
      '200': json(S.PasswordReply),
      '403': failure('Not an admin and not yourself, or oldPassword is wrong (api.forbidden)'),
      '429': failure('Too many wrong oldPasswords (auth.rate_limited); see Retry-After'),
    },
    guard(ctx) {
      if (ctx.user.role !== 'admin' && ctx.user.name !== ctx.params.name)
        throw new GatewayError('api.forbidden', 'only an admin may set another user’s password');
    },
    async handle(ctx) {
      const { name } = ctx.params;
      const { registry, limiter, tokens } = ctx.services;
      const self = name === ctx.user.name;
      if (self) {
        // A stolen token must not be enough to take the account over: the password is.
        const { oldPassword } = ctx.body;
        if (oldPassword === undefined)
          throw badInput('oldPassword: your current password is needed to change it', 'oldPassword');
        limiter.check(name, ctx.address);
        if (!(await registry.verifyAdminPassword(name, oldPassword))) {
          limiter.failed(name, ctx.address);
          throw new GatewayError('api.forbidden', 'oldPassword: that is not your current password', {
            field: 'oldPassword',
          });
        }
      }
      await registry.setAdminPassword(name, ctx.body.password);
      await audit(ctx, 'user.password', `user:${name}`);
      const auth = self ? registry.getAdminAuth(name) : undefined;
      sendJson(ctx.res, 200, auth ? { ok: true, ...tokens.issue(auth.user, auth.tokenEpoch) } : { ok: true });
    },
  }),
];

/** Logging in, and who a token belongs to. */
import { z } from 'zod';
import { GatewayError } from '../../../device-protocol/errors.ts';
import { ALL, failure, json, route } from '../context.ts';
import { sendJson } from '../http-util.ts';
import * as S from '../schemas.ts';

export const authRoutes = [
  route({
    method: 'POST',
    path: '/auth/login',
    roles: 'public',
    summary: 'Log in; rate limited per user name and per client address',
    body: S.LoginBody,
    responses: {
      '200': json(S.LoginReply),
      '400': failure('Bad input (api.bad_input)'),
      '401': failure('Wrong name or password (api.unauthorized)'),
      '429': failure('Too many attempts (auth.rate_limited); see Retry-After'),
    },
    async handle({ body, address, res, services: { registry, limiter, tokens } }) {
      limiter.check(body.name, address);
      const user = await registry.verifyAdminPassword(body.name, body.password);
      if (!user) {
        limiter.failed(body.name, address);
        throw new GatewayError('api.unauthorized', 'wrong name or password');
      }
      limiter.succeeded(body.name);
      const { token, expiresAt } = tokens.issue(user, registry.getAdminAuth(user.name)?.tokenEpoch ?? 0);
      sendJson(res, 200, { token, expiresAt, user: { name: user.name, role: user.role } });
    },
  }),
  route({
    method: 'GET',
    path: '/auth/me',
    roles: ALL,
    summary: 'Who the token belongs to',
    responses: { '200': json(z.object({ name: z.string(), role: S.AdminRoleName })) },
    handle: ({ res, user }) => sendJson(res, 200, { name: user.name, role: user.role }),
  }),
];

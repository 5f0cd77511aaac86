/** Provisioned accounts: credentials for the presets of a device's service profile. */
import { z } from 'zod';
import { GatewayError } from '../../../device-protocol/errors.ts';
import { type ProvisionedAccount, setDeviceAccount } from '../../../server/index.ts';
import { audit, json, route, STAFF } from '../context.ts';
import { sendJson } from '../http-util.ts';
import * as S from '../schemas.ts';
import { deviceOr404, imei } from './devices.ts';

/** What the API shows and audits of a provisioned account: never the secret. */
function accountView(a: ProvisionedAccount) {
  const { secret: _secret, ...rest } = a;
  return rest;
}

const label = "A preset label of the device's service profile";

export const accountRoutes = [
  route({
    method: 'GET',
    path: '/devices/{imei}/accounts',
    roles: STAFF,
    summary:
      "Accounts provisioned for the device's service profile presets (never a password); the device's transport brings them up by itself when it connects",
    params: { imei },
    responses: { '200': json(z.object({ items: z.array(S.DeviceAccount) })) },
    handle({ res, params, services: { registry } }) {
      deviceOr404(registry, params.imei);
      sendJson(res, 200, { items: registry.listDeviceAccounts(params.imei).map(accountView) });
    },
  }),
  route({
    method: 'PUT',
    path: '/devices/{imei}/accounts/{label}',
    roles: STAFF,
    summary:
      'Set the credentials of one preset (audited, without the password). Mail presets need address (user defaults to it); chat presets need jid. The password is sealed with the credentials key (MMGW_CREDENTIALS_KEY, the same on admin and transport nodes) and never returned',
    params: { imei, label },
    body: S.DeviceAccountBody,
    responses: {
      '200': json(S.DeviceAccount, 'Replaced'),
      '201': json(S.DeviceAccount, 'Created'),
    },
    guard: ({ params, services }) => void deviceOr404(services.registry, params.imei),
    async handle(ctx) {
      const { imei, label } = ctx.params;
      const { registry, sealSecret } = ctx.services;
      if (!sealSecret)
        throw new GatewayError('request.unavailable', 'this admin node cannot seal credentials', {
          retryable: true,
        });
      const r = await setDeviceAccount(registry, imei, { ...ctx.body, label }, sealSecret);
      await audit(
        ctx,
        r.before ? 'device.account.update' : 'device.account.create',
        `device:${imei}/account:${label}`,
        r.before && accountView(r.before),
        accountView(r.after),
      );
      sendJson(ctx.res, r.before ? 200 : 201, accountView(r.after));
    },
  }),
  route({
    method: 'DELETE',
    path: '/devices/{imei}/accounts/{label}',
    roles: STAFF,
    summary: 'Remove a provisioned account (audited); the transport drops it at the next connect',
    params: { imei, label },
    responses: { '204': { description: 'Removed' } },
    async handle(ctx) {
      const { imei, label } = ctx.params;
      const { registry } = ctx.services;
      deviceOr404(registry, imei);
      const before = await registry.removeDeviceAccount(imei, label);
      await audit(ctx, 'device.account.remove', `device:${imei}/account:${label}`, accountView(before));
      ctx.res.writeHead(204).end();
    },
  }),
];

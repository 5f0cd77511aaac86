/**
 * A device's wake-up channels (issue 14): listed redacted, and removed one by
 * one (audited). They live with the transport (server/transport/push/), so
 * the admin node asks the device's transport node over the bus, the node its
 * router picks as the edge's does (Subjects.pushAdmin); that node redacts them
 * before they leave it (admin-view.ts).
 */
import { z } from 'zod';
import { GatewayError } from '../../../device-protocol/errors.ts';
import {
  type PushAdminReply,
  type PushAdminRequest,
  type PushChannelView,
  Subjects,
} from '../../../server/index.ts';
import { type ApiServices, audit, json, route, STAFF } from '../context.ts';
import { sendJson } from '../http-util.ts';
import * as S from '../schemas.ts';
import { deviceOr404, imei } from './devices.ts';

/** How long the device's transport has to answer. */
const ASK_MS = 5000;

/** Asks the device's transport node; no transport up (or it left meanwhile) is 503, retryable. */
async function askTransport<T extends PushAdminReply>(
  { bus, transportOf }: ApiServices,
  request: PushAdminRequest,
): Promise<T> {
  const node = transportOf(request.deviceId);
  if (node === undefined)
    throw new GatewayError('request.unavailable', 'no transport node is up to ask for the wake-up channels', {
      retryable: true,
    });
  try {
    return await bus.request<T>(Subjects.pushAdmin(node), request, { timeoutMs: ASK_MS });
  } catch (err) {
    const code = (err as GatewayError).code;
    if (code === 'bus.no_responders' || code === 'bus.closed')
      throw new GatewayError('request.unavailable', `transport node ${node} did not answer`, {
        retryable: true,
      });
    throw err;
  }
}

export const pushRoutes = [
  route({
    method: 'GET',
    path: '/devices/{imei}/wakeup-channels',
    roles: STAFF,
    summary:
      "The device's wake-up channels (Web Push, FCM, APNs, SMS), oldest first, asked of its transport node: kind, id, when registered and last used, and what names each channel, redacted (never its keys or whole token). 503 while no transport answers",
    params: { imei },
    responses: { '200': json(z.object({ items: z.array(S.PushChannel) })) },
    async handle({ res, params, services }) {
      deviceOr404(services.registry, params.imei);
      const reply = await askTransport<{ items: PushChannelView[] }>(services, {
        op: 'list',
        deviceId: params.imei,
      });
      sendJson(res, 200, { items: reply.items });
    },
  }),
  route({
    method: 'DELETE',
    path: '/devices/{imei}/wakeup-channels/{id}',
    roles: STAFF,
    summary:
      'Remove a wake-up channel (audited, redacted): the device is no longer woken through it until its handset registers it again',
    params: { imei, id: { description: 'The channel id, as listed', schema: S.PushChannelId } },
    responses: { '204': { description: 'Removed' } },
    async handle(ctx) {
      const { imei, id } = ctx.params;
      deviceOr404(ctx.services.registry, imei);
      const { removed } = await askTransport<{ removed: PushChannelView }>(ctx.services, {
        op: 'remove',
        deviceId: imei,
        id,
      });
      await audit(ctx, 'device.wakeup_channel.remove', `device:${imei}/wakeup-channel:${id}`, removed);
      ctx.res.writeHead(204).end();
    },
  }),
];

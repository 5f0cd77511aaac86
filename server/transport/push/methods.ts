/**
 * The device's requests about its wake-up channels: push.register,
 * push.list, push.unregister and push.vapid (SPEC.md §5 "Wake-ups").
 * Only Web Push is built; the other kinds of issue 14 (fcm, apns, sms) are
 * refused with push.kind_not_enabled, so that a handset can tell "not here"
 * from "malformed".
 */
import { z } from 'zod';
import { GatewayError } from '../../../device-protocol/errors.ts';
import type { Value } from '../../../device-protocol/messages.ts';
import type { DestinationPolicy } from '../../net/destination-policy.ts';
import type { MethodDefinition } from '../types.ts';
import { type PushRegistration, type PushRegistrations, registrationId } from './registrations.ts';

export const PUSH_KINDS = ['webpush', 'fcm', 'apns', 'sms'] as const;
export const ENABLED_KINDS: ReadonlySet<string> = new Set(['webpush']);

/** Unpadded base64url of exactly `bytes` bytes, `first` the first byte when given. */
function base64url(bytes: number, first?: number) {
  return z
    .string()
    .max(Math.ceil((bytes * 4) / 3) + 2)
    .regex(/^[A-Za-z0-9_-]+={0,2}$/, { error: 'must be base64url' })
    .refine(
      (s) => {
        const raw = Buffer.from(s, 'base64url');
        return raw.length === bytes && (first === undefined || raw[0] === first);
      },
      { error: `must be ${bytes} bytes in base64url` },
    );
}

const webPushInput = z.object({
  kind: z.literal('webpush'),
  endpoint: z
    .string()
    .max(2048)
    .refine((s) => URL.canParse(s) && new URL(s).protocol === 'https:', {
      error: 'must be an https: URL',
    }),
  keys: z.object({
    // An uncompressed P-256 point: 65 bytes starting 0x04.
    p256dh: base64url(65, 4),
    auth: base64url(16),
  }),
});

const otherKindInput = z.looseObject({ kind: z.enum(['fcm', 'apns', 'sms']) });

const registerInput = z.discriminatedUnion('kind', [webPushInput, otherKindInput], {
  error: `kind must be one of ${PUSH_KINDS.join(', ')}`,
});

export interface PushMethodDeps {
  registrations: PushRegistrations;
  policy: DestinationPolicy;
  /** Channels one device may hold. */
  maxPerDevice: number;
  vapidPublicKey: string;
  now(): number;
}

/** The answer shape of one registration: the endpoint is the device's own, the keys are not echoed. */
function listed(id: string, r: PushRegistration): Value {
  return { id, kind: r.kind, endpoint: r.endpoint, at: r.at };
}

/** Checks the endpoint against the outbound policy now (it is checked again, and pinned, at each send). */
export async function checkEndpoint(policy: DestinationPolicy, endpoint: string): Promise<void> {
  const url = new URL(endpoint);
  const port = url.port === '' ? 443 : Number(url.port);
  try {
    await policy.check('push', url.hostname, port);
  } catch (err) {
    if (err instanceof GatewayError) throw new GatewayError(err.code, err.message, { field: 'endpoint' });
    throw new GatewayError('push.endpoint_unreachable', undefined, { field: 'endpoint' });
  }
}

export function pushMethods(deps: PushMethodDeps): MethodDefinition<any>[] {
  const register: MethodDefinition<z.output<typeof registerInput>> = {
    method: 'push.register',
    input: registerInput,
    async handle(ctx, input) {
      if (input.kind !== 'webpush' || !ENABLED_KINDS.has(input.kind)) {
        throw new GatewayError(
          'push.kind_not_enabled',
          `Wake-ups of kind "${input.kind}" are not enabled on this gateway; webpush is.`,
          { field: 'kind' },
        );
      }
      await checkEndpoint(deps.policy, input.endpoint);
      const id = registrationId(input.endpoint);
      const held = deps.registrations.list(ctx.deviceId);
      if (!held.some((r) => r.id === id) && held.length >= deps.maxPerDevice) {
        throw new GatewayError(
          'push.too_many',
          `This device has ${held.length} wake-up channels; the gateway allows ${deps.maxPerDevice}.`,
        );
      }
      await deps.registrations.put(ctx.deviceId, id, {
        kind: 'webpush',
        endpoint: input.endpoint,
        p256dh: input.keys.p256dh,
        auth: input.keys.auth,
        at: deps.now(),
      });
      return { id };
    },
  };
  const list: MethodDefinition<unknown> = {
    method: 'push.list',
    input: z.unknown(),
    handle: async (ctx) => ({
      registrations: deps.registrations.list(ctx.deviceId).map(({ id, record }) => listed(id, record)),
    }),
  };
  const unregister: MethodDefinition<{ id: string }> = {
    method: 'push.unregister',
    input: z.object({ id: z.string().min(1).max(64) }),
    async handle(ctx, { id }) {
      if (deps.registrations.get(ctx.deviceId, id) === undefined) {
        throw new GatewayError('push.not_found', undefined, { field: 'id' });
      }
      await deps.registrations.remove(ctx.deviceId, id);
      return { id };
    },
  };
  const vapidKey: MethodDefinition<unknown> = {
    method: 'push.vapid',
    input: z.unknown(),
    handle: async () => ({ key: deps.vapidPublicKey }),
  };
  return [register, list, unregister, vapidKey];
}

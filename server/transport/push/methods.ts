/**
 * The device's requests about its wake-up channels: push.register,
 * push.list, push.unregister and push.vapid (SPEC.md §5 "Wake-ups").
 * Web Push is always offered; FCM, APNs and SMS where the operator configured
 * them (push.fcm, push.apns, push.sms), SMS only to a device whose service
 * profile allows it (policies.smsWakeups); a kind not offered is refused with
 * push.kind_not_enabled once its input is well formed, so that a handset can
 * tell "not here" from "malformed".
 */
import { z } from 'zod';
import { GatewayError } from '../../../device-protocol/errors.ts';
import type { Value } from '../../../device-protocol/messages.ts';
import type { DestinationPolicy } from '../../net/destination-policy.ts';
import type { MethodDefinition } from '../types.ts';
import {
  APNS_TOKEN,
  APNS_TOPIC,
  channelId,
  FCM_TOKEN,
  MSISDN,
  type PushRegistration,
  type PushRegistrations,
} from './registrations.ts';

export const PUSH_KINDS = ['webpush', 'fcm', 'apns', 'sms'] as const;
export type PushKind = (typeof PUSH_KINDS)[number];

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

const fcmInput = z.object({ kind: z.literal('fcm'), token: FCM_TOKEN });
const apnsInput = z.object({ kind: z.literal('apns'), token: APNS_TOKEN, topic: APNS_TOPIC });
const smsInput = z.object({ kind: z.literal('sms'), msisdn: MSISDN });

const registerInput = z.discriminatedUnion('kind', [webPushInput, fcmInput, apnsInput, smsInput], {
  error: `kind must be one of ${PUSH_KINDS.join(', ')}`,
});

export interface PushMethodDeps {
  registrations: PushRegistrations;
  /** The kinds this gateway sends: webpush, and fcm / apns where configured. */
  enabled: ReadonlySet<PushKind>;
  policy: DestinationPolicy;
  /** Channels one device may hold. */
  maxPerDevice: number;
  vapidPublicKey: string;
  /** Whether the device's service profile allows SMS wake-ups (asked only for kind sms). */
  smsAllowed(deviceId: string): Promise<boolean>;
  now(): number;
}

/** The answer shape of one registration: what names it is the device's own; Web Push keys are not echoed. */
function listed(id: string, r: PushRegistration): Value {
  if (r.kind === 'webpush') return { id, kind: r.kind, endpoint: r.endpoint, at: r.at };
  if (r.kind === 'fcm') return { id, kind: r.kind, token: r.token, at: r.at };
  if (r.kind === 'sms') return { id, kind: r.kind, msisdn: r.msisdn, at: r.at };
  return { id, kind: r.kind, token: r.token, topic: r.topic, at: r.at };
}

/** The record a well-formed register of an enabled kind stores. */
function recordOf(input: z.output<typeof registerInput>, at: number): PushRegistration {
  if (input.kind === 'webpush') {
    return {
      kind: 'webpush',
      endpoint: input.endpoint,
      p256dh: input.keys.p256dh,
      auth: input.keys.auth,
      at,
    };
  }
  if (input.kind === 'fcm') return { kind: 'fcm', token: input.token, at };
  if (input.kind === 'apns') return { kind: 'apns', token: input.token, topic: input.topic, at };
  return { kind: 'sms', msisdn: input.msisdn, at };
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
      if (!deps.enabled.has(input.kind)) {
        throw new GatewayError(
          'push.kind_not_enabled',
          `Wake-ups of kind "${input.kind}" are not enabled on this gateway; ${[...deps.enabled].join(', ')} are.`,
          { field: 'kind' },
        );
      }
      if (input.kind === 'sms' && !(await deps.smsAllowed(ctx.deviceId))) {
        throw new GatewayError(
          'push.kind_not_enabled',
          "Wake-ups by SMS are not part of this device's service profile.",
          { field: 'kind' },
        );
      }
      if (input.kind === 'webpush') await checkEndpoint(deps.policy, input.endpoint);
      const record = recordOf(input, deps.now());
      const id = channelId(record);
      const held = deps.registrations.list(ctx.deviceId);
      if (!held.some((r) => r.id === id) && held.length >= deps.maxPerDevice) {
        throw new GatewayError(
          'push.too_many',
          `This device has ${held.length} wake-up channels; the gateway allows ${deps.maxPerDevice}.`,
        );
      }
      await deps.registrations.put(ctx.deviceId, id, record);
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

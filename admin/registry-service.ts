import type { Logger } from 'pino';
import { z } from 'zod';
import { GatewayError, toGatewayError } from '../device-protocol/errors.ts';
import {
  authenticateFrom,
  type Bus,
  type BusMessage,
  type DeviceAuthRecordV1,
  type DeviceInfo,
  type DeviceProfile,
  deviceProfile,
  lookupFrom,
  type Registry,
  type RegistryAuthRequest,
  type SharedTable,
  Subjects,
  type Subscription,
} from '../server/index.ts';

/**
 * The admin role's answer to Subjects.registryAuth: edges ask it who a device
 * is (authenticate with the secret, or look up by IMEI for token and resume);
 * and to Subjects.deviceProfile: transports ask what a device may use.
 * Subscribed in a queue group, so with several admin nodes each question is
 * answered once. In cluster mode a device this node's registry lacks is
 * answered from the shared `device_auth` table (another admin node added it),
 * never with auth.unknown_device while that table has it.
 */

export const REGISTRY_QUEUE = 'mmgw.admin.registry';

// What other roles send here is untrusted like any bus input: each request is parsed once.

/** Every registry request names a device; checked first, whatever the op. */
const registryRequestHead = z.object({ imei: z.string() });

const registryRequest = z.discriminatedUnion('op', [
  z.object({ op: z.literal('authenticate'), imei: z.string(), secret: z.string() }),
  z.object({ op: z.literal('lookup'), imei: z.string() }),
]);

/** 32: the longest device id the registry looks up (Registry.authenticate, lookup). */
const deviceProfileRequest = z.object({ imei: z.string().min(1).max(32) });

function parseRequest(data: unknown): RegistryAuthRequest {
  if (!registryRequestHead.safeParse(data).success)
    throw new GatewayError('request.bad_input', 'registry request needs op and imei', { field: 'imei' });
  const request = registryRequest.safeParse(data);
  if (request.success) return request.data;
  throw new GatewayError(
    'request.bad_input',
    'registry request op must be authenticate (with secret) or lookup',
    { field: 'op' },
  );
}

export interface RegistryService {
  close(): void;
}

export function startRegistryService(deps: {
  bus: Bus;
  registry: Registry;
  logger: Logger;
  shared?: () => SharedTable<DeviceAuthRecordV1> | undefined;
}): RegistryService {
  const { bus, registry, logger } = deps;
  const handle = (msg: BusMessage): DeviceInfo => {
    const req = parseRequest(msg.data);
    try {
      const shared = req.imei.length <= 32 && !registry.hasDevice(req.imei) ? deps.shared?.() : undefined;
      if (shared?.get(req.imei)) {
        return req.op === 'authenticate'
          ? authenticateFrom(shared, req.imei, req.secret)
          : lookupFrom(shared, req.imei);
      }
      return req.op === 'authenticate'
        ? registry.authenticate(req.imei, req.secret)
        : registry.lookup(req.imei);
    } catch (err) {
      const gw = toGatewayError(err);
      // Refusals are routine (the edge counts and logs them with the session); only surprises are logged here.
      if (!gw.code.startsWith('auth.'))
        logger.error({ err, op: req.op, imei: req.imei }, 'registry request failed');
      throw gw;
    }
  };
  const sub: Subscription = bus.subscribe(Subjects.registryAuth, handle, { queue: REGISTRY_QUEUE });
  // Transport nodes ask what a device may use (service profile, presets, policies, provisioned accounts).
  const profileSub: Subscription = bus.subscribe(
    Subjects.deviceProfile,
    (msg): DeviceProfile => {
      const request = deviceProfileRequest.safeParse(msg.data);
      if (!request.success)
        throw new GatewayError('request.bad_input', 'device profile request needs imei', { field: 'imei' });
      return deviceProfile(registry, request.data.imei);
    },
    { queue: REGISTRY_QUEUE },
  );
  // Cluster mode: edges authenticate from the shared copy, so authenticate() no longer runs here for
  // every Hello. A session coming up is when a device was last seen; every admin node keeps its own.
  const seenSub: Subscription | undefined = deps.shared
    ? bus.subscribe(Subjects.sessionUp, (msg) => {
        const imei = (msg.data as { deviceId?: unknown } | null)?.deviceId;
        if (typeof imei === 'string' && imei.length <= 32 && registry.hasDevice(imei))
          registry.touchLastSeen(imei);
      })
    : undefined;
  return {
    close() {
      sub.unsubscribe();
      profileSub.unsubscribe();
      seenSub?.unsubscribe();
    },
  };
}

/**
 * The transport role: answers the device requests the edge routes to this
 * node (Subjects.transportRequest(nodeId)) by dispatching them to a method
 * registry, and pushes events back to devices through whichever edge holds
 * their session (Subjects.device(deviceId)).
 *
 * Services add methods through the `methods` option (one MethodDefinition
 * per method); `sys.*` is built in. What mail and IM share is in kit/: the
 * device pusher, method inputs as zod schemas, the node's lmdb storage and
 * the account store over it, presets and provisioned accounts.
 */
import type { Logger } from 'pino';
import { z } from 'zod';
import { GatewayError, toGatewayError } from '../../device-protocol/errors.ts';
import type { Capabilities, Value } from '../../device-protocol/messages.ts';
import { type Bus, Subjects } from '../bus/bus.ts';
import { orAfter } from './kit/deadline.ts';
import { DevicePusher } from './kit/device-pusher.ts';
import { boundedString, parseInput, parseMethodInput } from './kit/method-input.ts';
import { sysEcho } from './methods/sys-echo.ts';
import { createSysInfo } from './methods/sys-info.ts';
import { sysStream } from './methods/sys-stream.ts';
import { MethodRegistry } from './registry.ts';
import { SERVICE_NAMES, type ServiceName } from '../store/device-profile.ts';
import { assertServiceAllowed, type DeviceProfiles } from './service-profile.ts';
import type { MethodContext, MethodDefinition, TransportRequest } from './types.ts';

export { MethodRegistry } from './registry.ts';
export type { MethodContext, MethodDefinition, TransportRequest } from './types.ts';
export { DEVICE_PUSH_TIMEOUT_MS, type DevicePush, DevicePusher } from './kit/device-pusher.ts';
export { parseMethodInput } from './kit/method-input.ts';
export { TransportStorage } from './kit/transport-storage.ts';
export {
  type DeviceSessionHooks,
  watchDeviceSessions,
  type WatchDeviceSessionsOptions,
} from './device-sessions.ts';
export {
  assertServiceAllowed,
  busDeviceProfileFetch,
  type DeviceProfileFetch,
  DeviceProfiles,
} from './service-profile.ts';

/** The built-in methods every transport node answers. */
export function defaultMethods(nodeId: string): MethodDefinition<any>[] {
  return [sysEcho, sysStream, createSysInfo(nodeId)];
}

const requestField = boundedString(256);
const transportRequestInput = z.object({
  deviceId: requestField,
  sessionId: requestField,
  id: requestField,
  method: requestField,
  body: z.unknown().optional(),
  caps: z.unknown().optional(),
  budgetMs: z.number().int().positive().max(3_600_000).optional(),
});

/** Checks what arrived on the bus; the edge is trusted, but a bus is shared, so the shape is checked anyway. */
export function parseTransportRequest(data: unknown): TransportRequest {
  // Built by hand, not by a zod transform: this runs for every request.
  const { deviceId, sessionId, id, method, body, caps, budgetMs } = parseInput(
    transportRequestInput,
    data,
    'request',
  );
  const request: TransportRequest = { deviceId, sessionId, id, method };
  if (budgetMs !== undefined) request.budgetMs = budgetMs;
  if (body !== undefined) request.body = body as Value;
  // Only an object is kept; what is inside is checked where it is used (effectiveCapabilities).
  if (caps !== null && typeof caps === 'object' && !Array.isArray(caps)) request.caps = caps as Capabilities;
  return request;
}

export interface TransportOptions {
  bus: Bus;
  nodeId: string;
  logger: Logger;
  dataDir: string;
  /** Methods in addition to the built-in sys.* ones. */
  methods?: MethodDefinition<any>[];
  /** Injected for tests; default Date.now. */
  now?: () => number;
  /**
   * Service profiles of devices (from the admin): a mail.* or im.* request of a
   * device whose profile leaves that service out fails with service.not_allowed,
   * and the methods see the profile as ctx.profile. Absent: every service, no profile.
   */
  profiles?: DeviceProfiles;
}

export interface TransportHandle {
  readonly registry: MethodRegistry;
  /**
   * Takes no more requests and resolves once those under way are answered
   * (at most CLOSE_WAIT_MS): a mail.send whose message went out still writes
   * its sent record, so a resend on another node is recognised.
   */
  close(): Promise<void>;
  /**
   * Resolves once the device's requests under way here are answered, or after
   * `ms`: a device moving to another node keeps its sessions until then (an
   * im.send must not lose its XMPP session between the send and its receipt).
   */
  settledFor(deviceId: string, ms: number): Promise<void>;
}

/** How long close() waits for the requests under way. */
export const CLOSE_WAIT_MS = 10_000;

export async function startTransport(opts: TransportOptions): Promise<TransportHandle> {
  const { bus, nodeId, dataDir } = opts;
  const logger = opts.logger.child({ role: 'transport' });
  const now = opts.now ?? Date.now;
  const registry = new MethodRegistry([...defaultMethods(nodeId), ...(opts.methods ?? [])]);
  let closed = false;
  const pusher = new DevicePusher(bus);
  /** Requests being handled, per device: settledFor() waits for a device's, close() for all. */
  const underWayOf = new Map<string, Set<Promise<unknown>>>();

  const subscription = bus.subscribe(Subjects.transportRequest(nodeId), async (msg) => {
    const receivedAt = now();
    const request = parseTransportRequest(msg.data);
    const definition = registry.get(request.method);
    if (definition === undefined) {
      throw new GatewayError('request.unknown_method', `Unknown method "${request.method}".`);
    }
    const service = request.method.slice(0, request.method.indexOf('.')) as ServiceName;
    const profile = SERVICE_NAMES.includes(service) ? await opts.profiles?.get(request.deviceId) : undefined;
    assertServiceAllowed(profile, service);
    const input = parseMethodInput(definition, request.body);
    // Made on first use: a pino child with redaction configured costs more than a whole im.send.
    let requestLogger: Logger | undefined;
    const ctx: MethodContext = {
      deviceId: request.deviceId,
      sessionId: request.sessionId,
      requestId: request.id,
      bus,
      get logger() {
        requestLogger ??= logger.child({
          deviceId: request.deviceId,
          method: request.method,
          requestId: request.id,
        });
        return requestLogger;
      },
      dataDir,
      ...(request.caps === undefined ? {} : { caps: request.caps }),
      ...(profile === undefined ? {} : { profile }),
      ...(request.budgetMs === undefined ? {} : { deadline: receivedAt + request.budgetMs }),
      now,
      push: pusher.to(request.deviceId),
    };
    const handled = (async () => definition.handle(ctx, input))();
    let mine = underWayOf.get(request.deviceId);
    if (!mine) underWayOf.set(request.deviceId, (mine = new Set()));
    mine.add(handled);
    try {
      return await handled;
    } catch (err) {
      const error = toGatewayError(err);
      if (error.code === 'internal') ctx.logger.error({ err }, 'transport method failed');
      throw error;
    } finally {
      mine.delete(handled);
      if (mine.size === 0 && underWayOf.get(request.deviceId) === mine) underWayOf.delete(request.deviceId);
    }
  });

  logger.info({ nodeId, methods: registry.names() }, 'transport started');
  return {
    registry,
    async settledFor(deviceId, ms) {
      const mine = underWayOf.get(deviceId);
      if (mine) await orAfter(Promise.allSettled([...mine]), ms, undefined);
    },
    async close() {
      if (closed) return;
      closed = true;
      subscription.unsubscribe();
      const underWay = [...underWayOf.values()].flatMap((mine) => [...mine]);
      if (underWay.length > 0) {
        logger.info({ requests: underWay.length }, 'waiting for the requests under way');
        await orAfter(Promise.allSettled(underWay), CLOSE_WAIT_MS, undefined);
      }
      pusher.close();
      logger.info({ nodeId }, 'transport stopped');
    },
  };
}

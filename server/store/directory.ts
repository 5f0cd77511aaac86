import type { Bus, DeviceDirectory, DeviceInfo, RegistryAuthRequest } from '../bus/bus.ts';
import { Subjects } from '../bus/bus.ts';

export interface BusDeviceDirectoryOptions {
  /** Per request; the admin role answers from a local lmdb read, so this only bounds an outage. Default 5000. */
  timeoutMs?: number;
}

/**
 * The edge's side of the registry: asks the admin role over the bus
 * (Subjects.registryAuth, answered by admin/registry-service.ts). The edge
 * never opens the registry itself, so edges can run on hosts without it. In
 * cluster mode this is only the fallback of the watched device_auth copy
 * (device-auth.ts sharedDeviceDirectory), for devices the copy lacks.
 *
 * Errors arrive as the admin's GatewayError (auth.unknown_device,
 * auth.bad_secret, auth.disabled) or as bus.no_responders / bus.timeout when
 * no admin role is reachable; the edge turns those into a retryable refusal.
 */
export function busDeviceDirectory(bus: Bus, options: BusDeviceDirectoryOptions = {}): DeviceDirectory {
  const timeoutMs = options.timeoutMs ?? 5000;
  const ask = (req: RegistryAuthRequest) =>
    bus.request<DeviceInfo>(Subjects.registryAuth, req, { timeoutMs });
  return {
    authenticate: (imei, secret) => ask({ op: 'authenticate', imei, secret }),
    lookup: (imei) => ask({ op: 'lookup', imei }),
  };
}

/**
 * The admin role. Today: the device registry service on the bus. The REST API
 * and web UI (a later issue) mount on the node's ops endpoint (server/ops/http.ts `use`).
 */
import type { Logger } from 'pino';
import type { Bus } from '../server/bus/bus.ts';
import type { Registry } from '../server/store/registry.ts';
import { startRegistryService } from './registry-service.ts';

export { REGISTRY_QUEUE, type RegistryService, startRegistryService } from './registry-service.ts';

export interface AdminRole {
  close(): Promise<void>;
}

export interface AdminRoleOptions {
  bus: Bus;
  registry: Registry;
  logger: Logger;
}

/** Starts the admin role's bus services. The caller owns the registry (opens and closes it). */
export async function startAdminRole(options: AdminRoleOptions): Promise<AdminRole> {
  const logger = options.logger.child({ role: 'admin' });
  const registryService = startRegistryService({ bus: options.bus, registry: options.registry, logger });
  logger.info('admin role started');
  return {
    async close() {
      registryService.close();
    },
  };
}

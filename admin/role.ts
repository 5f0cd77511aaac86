/**
 * The admin role of a node: opens the device registry (the node's other
 * roles and its callers read it through the handle), starts the admin
 * services and API (index.ts) and mounts the web UI on the ops endpoint.
 */
import { Registry, type RoleDefinition, type RoleHandle } from '../server/index.ts';
import { startAdminRole } from './index.ts';
import { createUiHandler } from './ui/serve.ts';

export const adminRole: RoleDefinition = {
  name: 'admin',
  async start(ctx): Promise<RoleHandle> {
    const { config, logger } = ctx;
    const registry = await Registry.open(config.data);
    const closeRegistry = async (err: unknown): Promise<never> => {
      await registry.close();
      throw err;
    };
    const admin = await startAdminRole({
      bus: ctx.bus,
      registry,
      logger,
      dataDir: config.data,
      ...(ctx.ops ? { ops: ctx.ops } : {}),
      membership: ctx.membership,
      ...(ctx.alarms ? { alarms: ctx.alarms } : {}),
      ...(config.records ? { retention: config.records } : {}),
      ...(config.admin ? { api: config.admin } : {}),
      firstAdmin: { name: config.admin?.firstAdminName, password: config.admin?.firstAdminPassword },
      credentialsKey: config.credentialsKey,
    }).catch(closeRegistry);
    try {
      // The web UI on the admin port (built here on first start when admin/ui/dist is missing).
      ctx.ops?.use(await createUiHandler({ logger }));
    } catch (err) {
      await admin.close();
      await closeRegistry(err);
    }
    return {
      registry,
      async stop() {
        await admin.close();
        await registry.close();
      },
    };
  },
};

/**
 * The admin role of a node: opens the device registry (the node's other
 * roles and its callers read it through the handle), starts the admin
 * services and API (index.ts) and mounts the web UI on the ops endpoint. In
 * cluster mode the registry's tables are the cluster's shared state
 * (JetStream KV, server/store/registry.ts), so every admin node serves the
 * same devices, users and reference data; the role waits for the shared
 * state at start, since an admin node without it would serve a registry of
 * its own. It also publishes the devices to the shared `device_auth` table
 * the edges authenticate from (server/store/device-auth.ts).
 */
import {
  type ClusterStateLease,
  type DeviceAuthSharing,
  isClusterMode,
  jetStreamMissing,
  leaseClusterState,
  leasedOpener,
  openDeviceAuthTable,
  Registry,
  type RoleDefinition,
  type RoleHandle,
  startDeviceAuthSharing,
} from '../server/index.ts';
import { startAdminRole } from './index.ts';
import { createUiHandler } from './ui/serve.ts';

export const adminRole: RoleDefinition = {
  name: 'admin',
  async start(ctx): Promise<RoleHandle> {
    const { config, logger } = ctx;
    let lease: ClusterStateLease | undefined = isClusterMode(config)
      ? await leaseClusterState(config, ctx.nodeId, logger)
      : undefined;
    let registry: Registry;
    try {
      registry = await Registry.open(config.data, lease ? { shared: lease.state } : {});
    } catch (err) {
      await lease?.release();
      if (!lease || !jetStreamMissing(err)) throw err;
      // A NATS bus without JetStream has no shared state to keep: the node serves
      // the registry of its data directory, as before cluster state existed.
      lease = undefined;
      logger.warn(
        { err },
        "NATS has no JetStream: the registry stays in this node's data directory, not shared with other admin nodes",
      );
      registry = await Registry.open(config.data);
    }
    const sharing = isClusterMode(config) ? shareDeviceAuth(ctx, registry) : undefined;
    const closeRegistry = async (err: unknown): Promise<never> => {
      await sharing?.stop();
      await registry.close();
      await lease?.release();
      throw err;
    };
    const admin = await startAdminRole({
      bus: ctx.bus,
      registry,
      ...(sharing ? { sharedDeviceAuth: () => sharing.table() } : {}),
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
        await sharing?.stop();
        await registry.close();
        await lease?.release();
      },
    };
  },
};

/** Publishing to `device_auth`, on the process's cluster state (opened in the background, retried). */
function shareDeviceAuth(
  ctx: Parameters<RoleDefinition['start']>[0],
  registry: Registry,
): DeviceAuthSharing & { stop(): Promise<void> } {
  const opener = leasedOpener(ctx.config, ctx.nodeId, ctx.logger, (state) =>
    openDeviceAuthTable(state, ctx.logger),
  );
  const sharing = startDeviceAuthSharing({
    registry,
    logger: ctx.logger,
    open: opener.open,
    origin: ctx.nodeId,
  });
  return {
    ...sharing,
    async stop() {
      sharing.stop();
      await sharing.publisher()?.flushed();
      await opener.close();
    },
  };
}

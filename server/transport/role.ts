/**
 * The transport role of a node: mail and chat services over the node's one
 * lmdb environment, the request dispatcher on the bus, and the device
 * session watch that brings backend sessions back when a device's session
 * comes up.
 *
 * When it starts (a node start, or the restart of a supervised transport
 * process) it asks every edge for the sessions it holds (Subjects.edgeSessions):
 * the edges answer with a session-up per session, so the accounts of devices
 * that stayed connected come back without the devices doing anything: chat
 * sessions, and the INBOX watchers this node ran (from their marks, pushing
 * the mail that arrived while it was down).
 *
 * In cluster mode the accounts (mail and chat, secrets sealed) move into the
 * cluster's shared state once it opens (kit/cluster-accounts.ts), so they do
 * not die with this node; the restore at start and the served counts take
 * only the devices the router gives this node.
 */
import { Subjects } from '../bus/bus.ts';
import { isClusterMode, leasedOpener } from '../store/shared/cluster.ts';
import { openInBackground } from '../store/shared/table.ts';
import type { RoleDefinition, RoleHandle } from '../roles.ts';
import { RendezvousRouter } from '../router/index.ts';
import { openImService } from './im/index.ts';
import {
  busDeviceProfileFetch,
  DeviceProfiles,
  startTransport,
  TransportStorage,
  watchDeviceSessions,
} from './index.ts';
import { CredentialCipher } from './credentials.ts';
import { SealedImAccountStore, type StoredImAccountV1 } from './im/account-store.ts';
import { adoptSharedAccounts, HandoverAccountRecords } from './kit/cluster-accounts.ts';
import { registerPushMetrics } from './kit/device-pusher.ts';
import { type Census, servedCounter } from './kit/served-counts.ts';
import { SealedMailAccountStore, type StoredAccountV1 } from './mail/account-store.ts';
import { openMailService, registryMediaProfiles } from './mail/index.ts';

export const transportRole: RoleDefinition = {
  name: 'transport',
  async start(ctx): Promise<RoleHandle> {
    const { bus, config, logger, membership, nodeId, recorder } = ctx;
    const dataDir = config.data;
    registerPushMetrics(ctx.metrics, bus);
    // The transport role's one lmdb environment: the accounts in it outlive a restart of the node.
    const storage = TransportStorage.open(dataDir);
    const shared = { dataDir, storage, logger, bus, recorder, credentialsKey: config.credentialsKey };
    const cluster = isClusterMode(config) ? clusterAccounts(ctx, storage) : undefined;
    const mail = openMailService({
      ...shared,
      ...(cluster ? { accounts: cluster.mail } : {}),
      // Allowed destinations and ports, accounts per device, the connect timeout.
      transport: config.transport,
      // Capability profiles per model and service policies, where this node holds the registry.
      ...(ctx.registry ? { mediaProfiles: registryMediaProfiles(ctx.registry) } : {}),
    });
    // Chat accounts too; their XMPP sessions come back at start and when a device reconnects.
    const im = openImService({
      ...shared,
      // One outbound policy per node: chat servers go where mail servers may.
      policy: mail.policy,
      ...(cluster ? { accounts: cluster.im } : {}),
      ...(config.im?.lingerMs === undefined ? {} : { lingerMs: config.im.lingerMs }),
    });
    // Service profiles (services allowed, presets, policies, provisioned accounts), asked of the admin role.
    const profiles = new DeviceProfiles(busDeviceProfileFetch(bus), { logger });
    let transport: Awaited<ReturnType<typeof startTransport>>;
    try {
      transport = await startTransport({
        bus,
        nodeId,
        logger,
        dataDir,
        methods: [...mail.methods, ...im.methods],
        profiles,
      });
    } catch (err) {
      await cluster?.close();
      await im.close();
      await mail.close();
      await storage.close();
      throw err;
    }
    // Device session up/down from the edges, for the devices pinned to this node (mail can add a hook).
    const router = new RendezvousRouter(membership);
    const holds = (deviceId: string) => (router.pick(deviceId) ?? nodeId) === nodeId;
    const sessionWatch = watchDeviceSessions({
      bus,
      holds,
      hooks: [
        {
          // The INBOX watchers this node ran before a restart first (a profile fetch that fails
          // must not keep them down), then operator-provisioned accounts (stored and brought up),
          // then every stored chat account.
          up: async (id, push) => {
            mail.restoreDevice(id, push);
            const profile = await profiles.refresh(id);
            if (profile) {
              await mail
                .provision(id, profile, push)
                .catch((err) => logger.warn({ err, deviceId: id }, 'provisioning mail accounts failed'));
              await im
                .provision(id, profile, push)
                .catch((err) => logger.warn({ err, deviceId: id }, 'provisioning chat accounts failed'));
            }
            await im.restoreDevice(id, push);
          },
          down: (id) => im.deviceGone(id),
        },
      ],
      logger,
    });
    void im
      .restoreAll(cluster ? holds : undefined)
      .catch((err) => logger.warn({ err }, 'restoring chat accounts failed'));
    const stopAsking = askEdgesOnceMember(ctx);
    // Shared records list the cluster's devices: count those the router gives this node.
    const mine =
      (census: Census): Census =>
      () => {
        const all = census();
        return cluster && all ? new Map([...all].filter(([deviceId]) => holds(deviceId))) : all;
      };
    const served = servedCounter(
      mine(() => mail.deps.accounts.census?.()),
      mine(() => im.deps.accounts.census?.()),
    );
    return {
      servedCount: served,
      async stop() {
        stopAsking();
        sessionWatch.close();
        router.close();
        await cluster?.close();
        await transport.close();
        await im.close();
        await mail.close();
        await storage.close();
      },
    };
  },
};

/**
 * The account stores of a transport in cluster mode: the node's lmdb until the
 * shared state opens in the background (retried while NATS or JetStream is
 * not there), then the shared tables.
 */
function clusterAccounts(ctx: Parameters<RoleDefinition['start']>[0], storage: TransportStorage) {
  const { config, logger, nodeId } = ctx;
  const cipher = CredentialCipher.open({ dataDir: config.data, key: config.credentialsKey, logger });
  const mailRecords = new HandoverAccountRecords<StoredAccountV1>(storage, 'mail');
  const imRecords = new HandoverAccountRecords<StoredImAccountV1>(storage, 'im');
  const opener = leasedOpener(config, nodeId, logger, async (state) => {
    await adoptSharedAccounts(state, 'mail', mailRecords, logger);
    await adoptSharedAccounts(state, 'im', imRecords, logger);
  });
  const opening = openInBackground(opener.open, {
    opened: () => logger.info('the accounts are in the cluster’s shared state'),
    failed: (err, attempt) =>
      logger[attempt === 1 ? 'warn' : 'debug']({ err }, 'the shared account tables are not open yet'),
  });
  return {
    mail: new SealedMailAccountStore({ records: mailRecords, cipher }),
    im: new SealedImAccountStore({ records: imRecords, cipher }),
    async close() {
      opening.cancel();
      await opener.close();
    },
  };
}

/**
 * Asks the edges for their sessions once the membership lists this node as a
 * transport: before that, the edges' routers would not pick it and its own
 * `holds` could claim devices of other transports. Returns a cancel.
 */
function askEdgesOnceMember(ctx: Parameters<RoleDefinition['start']>[0]): () => void {
  const { bus, membership, nodeId, logger } = ctx;
  const member = () => membership.nodes('transport').some((n) => n.nodeId === nodeId);
  let off: (() => void) | undefined;
  const ask = (): boolean => {
    if (!member()) return false;
    off?.();
    off = undefined;
    try {
      bus.publish(Subjects.edgeSessions, { nodeId });
      logger.debug('asked the edges for the sessions they hold');
    } catch (err) {
      logger.warn({ err }, 'could not ask the edges for their sessions');
    }
    return true;
  };
  if (!ask()) off = membership.onChange(() => void ask());
  return () => off?.();
}

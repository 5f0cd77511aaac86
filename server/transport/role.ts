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
 * cluster's shared state once it opens (kit/cluster-accounts.ts), and so do
 * the INBOX watch marks, the sent records and the chat archive cursors
 * (PairRecords.share), so they do not die with this node; the served counts
 * take only the devices the router gives this node. When another transport
 * leaves, this one brings up the devices that now hash to it (takeover.ts);
 * when one joins, it gives back those that hash there, and a device is
 * brought up only once the node that ran it let go (kit/device-holds.ts).
 */
import { reportTakeover } from '../alarms/service.ts';
import { Subjects } from '../bus/bus.ts';
import type { SharedState } from '../store/shared/table.ts';
import { isClusterMode, leasedOpener } from '../store/shared/cluster.ts';
import { jetStreamMissing } from '../store/shared/nats-kv.ts';
import { attemptWorthWarning, openInBackground } from '../store/shared/table.ts';
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
import { DeviceHolds } from './kit/device-holds.ts';
import { DevicePusher, onUndelivered, registerPushMetrics } from './kit/device-pusher.ts';
import type { PairRecords } from './kit/pair-records.ts';
import { type DeviceMoves, watchDeviceMoves } from './takeover.ts';
import { type Census, servedCounter } from './kit/served-counts.ts';
import { SealedMailAccountStore, type StoredAccountV1 } from './mail/account-store.ts';
import { openMailService, registryMediaProfiles } from './mail/index.ts';
import { openPushService, type PushService } from './push/index.ts';
import { mailPreview } from './push/preview.ts';
import { wakeFeed } from './push/wake-feed.ts';

/**
 * How long a starting transport of a cluster waits, once it sees itself in the
 * membership, before it asks the edges for their sessions: more than a
 * heartbeat interval (1 s), so that it knows the other transports by then.
 */
const MEMBERSHIP_SETTLE_MS = 1500;
/** How long a takeover waits for one device's watchers and chat sessions before counting it done. */
const TAKEOVER_WAIT_MS = 4000;
/** After the edges were asked: ready once no device has been coming back for this long, or after the max. */
const DEVICES_BACK_QUIET_MS = 1000;
const DEVICES_BACK_MAX_MS = 30_000;

/** How long a device moving away waits for its requests under way here before its sessions stop. */
const RELEASE_REQUESTS_WAIT_MS = 5000;

/** How long a draining transport waits for its draining heartbeat to move its devices (one beat is 1 s). */
const RELEASE_WAIT_MS = 3000;

export const transportRole: RoleDefinition = {
  name: 'transport',
  async start(ctx): Promise<RoleHandle> {
    const { bus, config, logger, membership, nodeId, recorder } = ctx;
    const dataDir = config.data;
    registerPushMetrics(ctx.metrics, bus);
    // The transport role's one lmdb environment: the accounts in it outlive a restart of the node.
    const storage = TransportStorage.open(dataDir);
    const shared = { dataDir, storage, logger, bus, recorder, credentialsKey: config.credentialsKey };
    // Set once the shared state is open (cluster mode): which transport runs each device's sessions.
    let deviceHolds: DeviceHolds | undefined;
    const liveTransport = (id: string) => membership.nodes('transport').some((n) => n.nodeId === id);
    const cluster = isClusterMode(config) ? clusterAccounts(ctx, storage) : undefined;
    // Wake-ups of devices without a session (opened below, once the outbound policy is there).
    let push: PushService | undefined;
    // Service profiles (services allowed, presets, policies, provisioned accounts), asked of the admin role.
    const profiles = new DeviceProfiles(busDeviceProfileFetch(bus), { logger });
    const mail = openMailService({
      wake: (deviceId, n, newest) => push?.wake(deviceId, 'mail', n, mailPreview(newest)) ?? false,
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
      // A device that can be woken keeps its chat sessions while its phone sleeps, as its INBOX
      // watchers stay on IDLE: chat that arrives then wakes it, after the linger time too.
      keepAway: (deviceId) => push?.canWake(deviceId) ?? false,
    });
    push = openPushService({
      storage,
      dataDir,
      policy: mail.policy,
      ...(config.push ? { settings: config.push } : {}),
      metrics: ctx.metrics,
      recorder,
      logger,
      // Whether a device may have SMS wake-ups, and its operator (what they are counted per).
      profileOf: (deviceId) => profiles.get(deviceId),
      // The admin's questions about the devices' channels (admin/api/routes/push.ts).
      admin: { bus, nodeId },
    });
    const wakeService = push;
    // Chat that found no session, and mail or chat held for a detached session, wakes the device.
    const stopWakeFeed = onUndelivered(
      bus,
      wakeFeed((deviceId, kind, n, preview) => wakeService.wake(deviceId, kind, n, preview)),
    );
    let transport: Awaited<ReturnType<typeof startTransport>>;
    try {
      transport = await startTransport({
        bus,
        nodeId,
        logger,
        dataDir,
        methods: [...mail.methods, ...im.methods, ...push.methods],
        profiles,
      });
    } catch (err) {
      stopWakeFeed();
      await push.close();
      await cluster?.close();
      await im.close();
      await mail.close();
      await storage.close();
      throw err;
    }
    const sharing = cluster
      ? shareRecords(ctx, [...mail.records, ...im.records, ...push.records], async (state) => {
          const opening = deviceHolds ? undefined : DeviceHolds.open(state, { nodeId, live: liveTransport });
          // The SMS counts beside the holds: the opening waits for the slower, not the sum.
          const [opened] = await Promise.all([opening, wakeService.shareLimits(state)]);
          deviceHolds ??= opened;
        })
      : undefined;
    // In a cluster nothing is brought up before the accounts, marks, cursors and holds are the
    // cluster's: from the node's own lmdb (emptied when they moved) it would start no watcher.
    const clusterReady = cluster && sharing ? Promise.all([cluster.ready, sharing.ready]) : undefined;
    const records = [...mail.records, ...im.records];
    /**
     * Names this node as the device's (after the node that ran it let go), then waits until the
     * copies of the marks, cursors and sent records hold that node's last writes: the tables'
     * watches are not ordered with the holds' watch, and an old chat cursor pushes messages twice.
     */
    const acquire = async (id: string): Promise<void> => {
      if (!deviceHolds || (await deviceHolds.acquire(id)) === undefined) return;
      await Promise.all(records.map((r) => r.caughtUp())).catch((err: unknown) =>
        logger.warn({ err, deviceId: id }, 'shared records not caught up; going on from what is here'),
      );
    };
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
            wakeService.deviceBack(id);
            await clusterReady;
            // A node that ran the device until now writes its last marks first (a device moving back).
            await acquire(id);
            // The membership changed while it waited: the node the router picks now takes it.
            if (!holds(id)) return void (await deviceHolds?.release(id));
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
    // In a cluster the edges' session announcements bring back the devices this node holds; at start it
    // does not know the other transports yet, so a restore of "its" devices would take theirs too.
    let stopped = false;
    let stopAsking = () => {};
    const pusher = new DevicePusher(bus);
    if (!cluster) {
      void im.restoreAll().catch((err) => logger.warn({ err }, 'restoring chat accounts failed'));
      // A sleeping device that can be woken gets its INBOX watchers back without a session (in a
      // cluster the takeover of the returning node's devices does this), else mail that arrives
      // after a restart would wait until the user opens the app.
      for (const id of mail.deps.accounts.census?.().keys() ?? []) {
        if (wakeService.canWake(id)) mail.restoreDevice(id, pusher.to(id));
      }
    }
    let moves: DeviceMoves | undefined;
    const devicesWithAccounts = () =>
      new Set([
        ...(mail.deps.accounts.census?.().keys() ?? []),
        ...(im.deps.accounts.census?.().keys() ?? []),
      ]);
    // Brings a device's accounts up here without a session of it (a takeover, a sleeping device).
    const takeOver = async (id: string): Promise<number> => {
      await acquire(id);
      mail.restoreDevice(id, pusher.to(id));
      await Promise.all([mail.watchersReady(id, TAKEOVER_WAIT_MS), im.takeOver(id, TAKEOVER_WAIT_MS)]);
      return mail.deps.accounts.list(id).length + im.deps.accounts.list(id).length;
    };
    const watchMoves = () =>
      watchDeviceMoves({
        nodeId,
        nodeIds: () => router.nodeIds(),
        onChange: (listener) => membership.onChange(listener),
        devices: devicesWithAccounts,
        takeOver,
        release: async (id) => {
          await transport.settledFor(id, RELEASE_REQUESTS_WAIT_MS);
          await Promise.all([mail.releaseDevice(id), im.releaseDevice(id)]);
          await deviceHolds?.release(id);
        },
        report: (report) => reportTakeover(bus, report),
        logger,
      });
    // Not ready (/readyz) in a cluster until the devices with a session here are being brought
    // back: a rolling restart that goes on to the next transport before then moves them twice.
    let waitingFor: string | undefined = clusterReady ? 'the cluster’s shared tables' : undefined;
    // Nor in the heartbeat before its tables open: the edges would send it requests it answers
    // from its emptied lmdb (mail.not_found, im.not_found).
    let tablesOpen = !clusterReady;
    if (clusterReady) {
      void clusterReady.then(() => {
        if (stopped) return;
        tablesOpen = true;
        ctx.announce();
        waitingFor = 'its devices’ sessions from the edges';
        // Ready once the devices the edges told of are back here: a rolling restart moves on to
        // the next node only then, not while this one still brings devices up.
        stopAsking = askEdgesOnceMember(ctx, MEMBERSHIP_SETTLE_MS, () => {
          waitingFor = 'its devices’ accounts to come back';
          void sessionWatch.quiet(DEVICES_BACK_QUIET_MS, DEVICES_BACK_MAX_MS).then(() => {
            waitingFor = undefined;
            if (!stopped) void bringUpSleeping();
          });
        });
        moves = watchMoves();
      });
    } else stopAsking = askEdgesOnceMember(ctx, 0);
    /**
     * The devices the router gives this node that sleep with a wake-up channel (no session for the
     * edges to tell of): the transport that served them while this one was away let them go when
     * it came back, so they are brought up here, or mail and chat would wake nobody.
     */
    const bringUpSleeping = async () => {
      const sleeping = [...devicesWithAccounts()].filter(
        (id) => holds(id) && wakeService.canWake(id) && !sessionWatch.has(id),
      );
      for (const id of sleeping) {
        if (stopped) return;
        await takeOver(id).catch((err) =>
          logger.warn({ err, deviceId: id }, 'sleeping device not brought up'),
        );
      }
      if (sleeping.length > 0) logger.info({ devices: sleeping.length }, 'sleeping devices brought up');
    };
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
      readiness: () => (waitingFor === undefined ? [] : [`transport: waiting for ${waitingFor}`]),
      advertised: () => tablesOpen,
      // The node's heartbeat says "draining" from now on: once the transports hear it, the others
      // take this node's devices over and this one releases them (watchDeviceMoves); stop waits for that.
      async drain() {
        if (moves) await untilReleased(membership, router, nodeId, moves);
      },
      async stop() {
        stopped = true;
        stopAsking();
        moves?.close();
        sessionWatch.close();
        router.close();
        // The requests under way first: they may still write to the shared tables closed next.
        await transport.close();
        pusher.close();
        stopWakeFeed();
        await wakeService.close();
        await sharing?.close();
        await cluster?.close();
        await im.close();
        await mail.close();
        await storage.close();
      },
    };
  },
};

/**
 * Resolves once the router of this node no longer picks it (its draining
 * heartbeat came round) and the devices it gave up are released, at once
 * when no other transport serves (nobody to hand over to), or after
 * RELEASE_WAIT_MS.
 */
function untilReleased(
  membership: Parameters<RoleDefinition['start']>[0]['membership'],
  router: RendezvousRouter,
  nodeId: string,
  moves: DeviceMoves,
): Promise<void> {
  const others = () => membership.nodes('transport').some((n) => n.nodeId !== nodeId && !n.draining);
  const picked = () => others() && router.nodeIds().includes(nodeId);
  return new Promise<void>((resolve) => {
    const done = () => {
      off();
      clearTimeout(timer);
      void moves.settled().then(resolve);
    };
    const timer = setTimeout(done, RELEASE_WAIT_MS);
    const off = membership.onChange(() => {
      if (!picked()) done();
    });
    if (!picked()) done();
  });
}

/**
 * Moves the marks, sent records and chat cursors into the cluster's shared
 * state and opens the device holds, in the background and retried like the
 * accounts, on a lease of its own: a failure here (a bucket not created in
 * time) gives back only this lease, never the connection the account tables
 * already serve from.
 */
function shareRecords(
  ctx: Parameters<RoleDefinition['start']>[0],
  records: PairRecords<object>[],
  holds: (state: SharedState) => Promise<void>,
): SharedOpening {
  const says = {
    opened: 'the marks and sent records are in the cluster’s shared state',
    notYet: 'the shared mark tables are not open yet',
  };
  return openShared(ctx, says, async (state) => {
    // Each table loads its copy apart: together, an opening after a NATS outage waits for the
    // slowest table, not for the sum of them.
    await Promise.all(records.map((r) => r.share(state)));
    await holds(state);
  });
}

interface SharedOpening {
  /** Resolves once opened, or at once on NATS without JetStream (this node's lmdb then serves); never if the node stops first. */
  ready: Promise<void>;
  close(): Promise<void>;
}

/** Runs `adopt` on the cluster's shared state once it opens, in the background and retried, on a lease of its own. */
function openShared(
  ctx: Parameters<RoleDefinition['start']>[0],
  says: { opened: string; notYet: string },
  adopt: (state: SharedState) => Promise<void>,
): SharedOpening {
  const { config, logger, nodeId } = ctx;
  const opener = leasedOpener(config, nodeId, logger, adopt);
  let opened!: () => void;
  const ready = new Promise<void>((resolve) => (opened = resolve));
  const opening = openInBackground(opener.open, {
    opened: () => {
      logger.info(says.opened);
      opened();
    },
    failed: (err, attempt) => {
      logger[attemptWorthWarning(attempt) ? 'warn' : 'debug']({ err, attempt }, says.notYet);
      // NATS without JetStream: this node's lmdb serves (as an admin node's registry does); no takeover.
      if (jetStreamMissing(err)) opened();
    },
  });
  return {
    ready,
    async close() {
      opening.cancel();
      await opener.close();
    },
  };
}

/**
 * The account stores of a transport in cluster mode: the node's lmdb until the
 * shared state opens in the background (retried while NATS or JetStream is
 * not there), then the shared tables.
 */
function clusterAccounts(ctx: Parameters<RoleDefinition['start']>[0], storage: TransportStorage) {
  const { config, logger } = ctx;
  const cipher = CredentialCipher.open({ dataDir: config.data, key: config.credentialsKey, logger });
  const mailRecords = new HandoverAccountRecords<StoredAccountV1>(storage, 'mail');
  const imRecords = new HandoverAccountRecords<StoredImAccountV1>(storage, 'im');
  const says = {
    opened: 'the accounts are in the cluster’s shared state',
    notYet: 'the shared account tables are not open yet',
  };
  const opening = openShared(ctx, says, async (state) => {
    await adoptSharedAccounts(state, 'mail', mailRecords, logger);
    await adoptSharedAccounts(state, 'im', imRecords, logger);
  });
  return {
    mail: new SealedMailAccountStore({ records: mailRecords, cipher }),
    im: new SealedImAccountStore({ records: imRecords, cipher }),
    ready: opening.ready,
    close: opening.close,
  };
}

/**
 * Asks the edges for their sessions once the membership lists this node as a
 * transport: before that, the edges' routers would not pick it and its own
 * `holds` could claim devices of other transports. In a cluster it waits
 * `settleMs` more, until it heard the other transports' heartbeats. Returns a cancel.
 */
function askEdgesOnceMember(
  ctx: Parameters<RoleDefinition['start']>[0],
  settleMs: number,
  asked: () => void = () => {},
): () => void {
  const { bus, membership, nodeId, logger } = ctx;
  const member = () => membership.nodes('transport').some((n) => n.nodeId === nodeId);
  let off: (() => void) | undefined;
  let timer: NodeJS.Timeout | undefined;
  let settling = false;
  const ask = (): boolean => {
    if (!member()) return false;
    off?.();
    off = undefined;
    if (!settling && settleMs > 0) {
      settling = true;
      timer = setTimeout(ask, settleMs);
      return true;
    }
    try {
      bus.publish(Subjects.edgeSessions, { nodeId });
      logger.debug('asked the edges for the sessions they hold');
    } catch (err) {
      logger.warn({ err }, 'could not ask the edges for their sessions');
    }
    asked();
    return true;
  };
  if (!ask()) off = membership.onChange(() => void ask());
  return () => {
    off?.();
    clearTimeout(timer);
  };
}

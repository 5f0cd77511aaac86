/**
 * The node composer: one process, any set of roles, wired through the bus.
 *
 *   bus ─ membership (heartbeats; the members table in cluster mode) ─ router
 *    ├─ admin: registry (lmdb) + registry service on the bus
 *    ├─ transport: device requests for the devices hashed to this node
 *    ├─ transcoder: image and body shrinking, a queue group on the bus
 *    └─ edge: device sockets; asks admin over the bus who a device is
 *   ops endpoint: /healthz /readyz /metrics (+ /api/v1 mounted by the admin)
 *
 * Each role is a RoleDefinition in its own role.ts (server/roles.ts); this
 * file runs the table in that order and stops it in reverse. Supervised (the
 * default of `mmgw start`, config `supervise`), the transport and the
 * transcoder run in child processes that a crash restarts alone
 * (supervision/supervisor.ts) while this process keeps the bus broker, the
 * admin and the edge with every device session. With edge.workers > 1 the
 * edge runs in N worker processes that share the device port
 * (supervision/edge-workers.ts). Children reach the primary's roles over the
 * IPC bus; the primary sums their metrics into its /metrics.
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { AggregatorRegistry, type Registry as PromRegistry } from 'prom-client';
import { GatewayError } from '../device-protocol/errors.ts';
import type { AlarmService } from './alarms/service.ts';
import { type Bus, type NodeHeartbeat, type ServedCounts, Subjects } from './bus/bus.ts';
import { createBus } from './bus/index.ts';
// Types only: the config schema (zod) is loaded where a config is parsed, never in a child process.
import type { Config, LoadConfigOptions, Role } from './config.ts';
import { type OpsServer, type Readiness, startOpsServer } from './ops/http.ts';
import { watchUnready } from './ops/unready-watch.ts';
import type { CertificateFacts, ServingTls } from './net/serving-tls.ts';
import { createLogger } from './ops/logger.ts';
import { createMetrics } from './ops/metrics.ts';
import { createBusRecorder } from './records/recorder.ts';
import {
  listenError,
  type RoleContext,
  type RoleDefinition,
  type StartedRole,
  startRoles,
  stopRoles,
} from './roles.ts';
import { Membership, startHeartbeat } from './router/index.ts';
import { type DataDirLock, lockDataDir, makePrivate } from './store/data-dir.ts';
import type { Registry } from './store/registry.ts';
import { BUILT, SUPERVISED_ROLES, type SupervisedRole } from './supervision/child-entry.ts';

const ROOT = fileURLToPath(new URL(BUILT ? '../..' : '..', import.meta.url));
export const RELEASE: string = (() => {
  try {
    return JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version ?? 'dev';
  } catch {
    return 'dev';
  }
})();

/** Heartbeat every second; a node not heard from for 3.5 s is out of every hash. */
const HEARTBEAT_INTERVAL_MS = 1000;
export const HEARTBEAT_TTL_MS = 3500;
/** How long a drain may take before it is cut short. */
const DRAIN_TIMEOUT_MS = 30_000;

export interface RunningNode {
  nodeId: string;
  roles: Role[];
  /** Device endpoint port (edge roles; the shared port of the workers). */
  devicePort?: number;
  /** Ops/admin endpoint port (absent in child processes). */
  adminPort: number;
  logger: Logger;
  metrics: PromRegistry;
  bus: Bus;
  /** The ops server, to mount further handlers (admin API). */
  ops?: OpsServer;
  /** The registry (admin role). */
  registry?: Registry;
  readiness(): Readiness;
  /** Stops taking devices and tells connected ones to move; then close(). */
  drain(reason?: string): Promise<void>;
  /** Stops every role and frees every resource. Idempotent; every call resolves when it is done. */
  close(): Promise<void>;
  /** Resolves once the node has closed, whoever closed it (a signal, or a drain asked over the bus). */
  readonly closed: Promise<void>;
  /** Devices and accounts its roles serve (transport), as its heartbeat carries them. */
  served(): ServedCounts | undefined;
  /** The certificate served (config `tls`); undefined without TLS. */
  readonly tls?: CertificateFacts;
  /**
   * SIGHUP: reads the certificate files again for the ops server and the edge, here and in the
   * edge workers. Logs what it did; files that do not load leave the old certificate serving.
   */
  reloadTls(): void;
}

export interface NodeDeps {
  logger?: Logger;
  /** Internal: this process is edge worker `index` of a primary (IPC bus, no ops endpoint). */
  worker?: { index: number };
  /**
   * Internal: this process runs one supervised role for a primary (role-worker.ts): no ops
   * endpoint, no heartbeat of its own (the primary's says whether the role is up). With
   * registryLocal the primary holds the admin's registry on the same data directory, which this
   * process then reads too (capability profiles of the transport).
   */
  child?: { role: SupervisedRole; registryLocal: boolean };
  /** The role table to run instead of the one built from config.roles (tests of the composer). */
  table?: RoleDefinition[];
}

/** The role modules, loaded only when the node runs the role (an edge worker never loads the transport). */
const ROLE_MODULES: Record<Role, () => Promise<RoleDefinition>> = {
  admin: async () => (await import('../admin/role.ts')).adminRole,
  transport: async () => (await import('./transport/role.ts')).transportRole,
  transcoder: async () => (await import('../transcoder/role.ts')).transcoderRole,
  edge: async () => (await import('./edge/role.ts')).edgeRole,
};

function isSupervised(role: Role): role is SupervisedRole {
  return (SUPERVISED_ROLES as readonly string[]).includes(role);
}

function defaultNodeId(): string {
  const host =
    hostname()
      .replace(/[^A-Za-z0-9_-]/g, '-')
      .slice(0, 40) || 'node';
  return `${host}-${randomBytes(3).toString('hex')}`;
}

function busKind(url: string): { kind: 'inproc' } | { kind: 'nats'; url: string } {
  return url === 'inproc' ? { kind: 'inproc' } : { kind: 'nats', url };
}

/**
 * The role table of the node: its roles in the config's order (admin,
 * transport, transcoder, edge), the supervised ones as child processes, and
 * the records sender after the admin, so that it stops after the roles that
 * record and before the admin that stores the records.
 */
async function roleTable(
  roles: Role[],
  config: Config,
  deps: NodeDeps,
  recorder: { close(): Promise<void> },
): Promise<RoleDefinition[]> {
  const supervise = config.supervise && !deps.worker && !deps.child;
  const { supervisedRole } = supervise
    ? await import('./supervision/supervisor.ts')
    : { supervisedRole: undefined };
  const table: RoleDefinition[] = [];
  if (deps.child?.registryLocal) table.push(localRegistry(config));
  const records: RoleDefinition = { name: 'recorder', start: async () => ({ stop: () => recorder.close() }) };
  if (!roles.includes('admin')) table.push(records);
  for (const role of roles) {
    const def = supervisedRole && isSupervised(role) ? supervisedRole(role) : await ROLE_MODULES[role]();
    // The transcoder needs nothing of the transport before it: both start at once.
    table.push(
      role === 'transcoder' ? { name: def.name, start: (c) => def.start(c), alongsidePrevious: true } : def,
    );
    if (role === 'admin') table.push(records);
  }
  return table;
}

/** In a supervised role's process: the registry the primary's admin writes, read here. */
function localRegistry(config: Config): RoleDefinition {
  return {
    name: 'registry',
    async start() {
      const { Registry } = await import('./store/registry.ts');
      const registry = await Registry.open(config.data, { mustExist: true });
      return { registry, stop: () => registry.close() };
    },
  };
}

export async function startNode(config: Config, deps: NodeDeps = {}): Promise<RunningNode> {
  const { worker, child } = deps;
  const primary = !worker && !child;
  const nodeId = config.nodeId ?? defaultNodeId();
  // A child is handed its config parsed: it never loads the config module and its schema.
  const configModule = primary ? await import('./config.ts') : undefined;
  const roles: Role[] = configModule
    ? configModule.expandRoles(config.roles)
    : child
      ? [child.role]
      : ['edge'];
  const logger = deps.logger ?? createLogger({ level: config.log.level, nodeId });
  const startedAt = Date.now();
  // A supervised role's series carry a node label of their own, so that the primary's sum keeps them apart.
  const metrics = createMetrics({
    nodeId: child ? `${nodeId}-${child.role}` : nodeId,
    roles,
    release: RELEASE,
  });
  const started: StartedRole[] = [];
  let draining = false;
  let closed = false;
  let ops: OpsServer | undefined;
  let lock: DataDirLock | undefined;
  // Every process that listens loads the files itself (a supervised role's child listens on nothing).
  const tls: ServingTls | undefined =
    config.tls !== undefined && !child
      ? (await import('./net/serving-tls.ts')).ServingTls.load(config.tls)
      : undefined;

  if (configModule)
    logger.info(
      { config: configModule.redactedConfig(config), nodeId, roles, release: RELEASE },
      'starting node',
    );
  // One gateway per data directory (the CLI tools beside it take no lock; nor do the children).
  if (primary) lock = lockDataDir(config.data);

  let bus: Bus;
  try {
    bus =
      !primary && config.bus === 'inproc'
        ? await createBus({ kind: 'ipc', logger })
        : await createBus({
            ...busKind(config.bus),
            name: child ? `${nodeId}-${child.role}` : nodeId,
            logger,
          });
  } catch (err) {
    lock?.release();
    throw err;
  }
  const membership = new Membership({ bus, logger });
  membership.start();
  // Cluster mode: the membership is the shared members table once it opens (server/router/cluster-members.ts).
  const members =
    config.bus !== 'inproc'
      ? (await import('./router/cluster-members.ts')).clusterMembers({
          config,
          nodeId,
          logger,
          membership,
          ...(child ? {} : { heartbeat: () => heartbeat() }),
        })
      : undefined;
  let alarms: AlarmService | undefined;

  const isRole = (name: string): name is Role => (roles as string[]).includes(name);
  const readiness = (): Readiness => {
    const reasons: string[] = [];
    if (draining) reasons.push('node is draining');
    const up = new Set(started.map((r) => r.name));
    for (const role of roles) if (!up.has(role)) reasons.push(`${role}: not started`);
    if (roles.includes('edge') && membership.nodes('transport').length === 0) {
      reasons.push('edge: no transport node known');
    }
    for (const r of started) reasons.push(...(r.handle.readiness?.() ?? []));
    return { ready: reasons.length === 0, reasons };
  };
  // A node that stays unready says why in its log (the processes with an ops endpoint: the
  // primary speaks for its supervised children, and workers have none).
  const unready = primary ? watchUnready(readiness, logger) : undefined;

  let resolveClosed!: () => void;
  const whenClosed = new Promise<void>((resolve) => (resolveClosed = resolve));
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closed = true;
    closing ??= shutdown().finally(resolveClosed);
    return closing;
  };
  let stopHeartbeat: (() => void) | undefined;
  let drainSub: ReturnType<Bus['subscribe']> | undefined;
  const shutdown = async (): Promise<void> => {
    // Out of every hash first: devices are routed elsewhere while the roles stop.
    stopHeartbeat?.();
    unready?.stop();
    await members?.leave();
    drainSub?.unsubscribe();
    // Reverse start order: the edge first (no new work), the admin last.
    await stopRoles(started, logger);
    await alarms?.close().catch((err: unknown) => logger.warn({ err }, 'alarms failed to stop'));
    membership.stop();
    await members?.close();
    await ops?.close();
    try {
      await bus.close();
    } catch (err) {
      logger.debug({ err }, 'bus close failed');
    }
    lock?.release();
    logger.info({ nodeId }, child ? 'role process stopped' : 'node stopped');
  };

  const served = (): ServedCounts | undefined => {
    let sum: ServedCounts | undefined;
    for (const { handle } of started) {
      const s = handle.servedCount?.();
      if (!s) continue;
      sum = {
        devices: (sum?.devices ?? 0) + s.devices,
        mailAccounts: (sum?.mailAccounts ?? 0) + s.mailAccounts,
        imAccounts: (sum?.imAccounts ?? 0) + s.imAccounts,
      };
    }
    return sum;
  };
  const heartbeat = (): NodeHeartbeat => {
    const usage = process.cpuUsage();
    const servedNow = served();
    let sessions = 0;
    let connected = 0;
    for (const { handle } of started) {
      sessions += handle.sessionCount?.() ?? 0;
      connected += handle.connectedCount?.() ?? 0;
    }
    return {
      nodeId,
      // What serves now: a supervised role while its process is up, not the edge of edge workers.
      roles: started.filter((r) => isRole(r.name) && (r.handle.advertised?.() ?? true)).map((r) => r.name),
      release: RELEASE,
      startedAt,
      ttlMs: HEARTBEAT_TTL_MS,
      draining,
      sessions,
      connected,
      rssBytes: process.memoryUsage.rss(),
      cpuSeconds: (usage.user + usage.system) / 1e6,
      ...(servedNow ? { served: servedNow } : {}),
      ...(members?.writing() ? { memberTable: true } : {}),
    };
  };
  /** Tells the cluster at once what this node serves now (the timer repeats it every second). */
  const announce = (): void => {
    // A supervised role's process has no heartbeat of its own: the primary's says whether it is up.
    if (child || closed) return;
    const beat = heartbeat();
    // Count ourselves at once: a one-process node must not wait for its own heartbeat to come back.
    membership.observe(beat);
    members?.announce();
    if (stopHeartbeat === undefined) {
      stopHeartbeat = startHeartbeat(bus, heartbeat, HEARTBEAT_INTERVAL_MS);
      return;
    }
    try {
      bus.publish(Subjects.heartbeat, beat);
    } catch (err) {
      logger.debug({ err }, 'heartbeat not sent');
    }
  };

  try {
    if (primary) {
      const metricsSource = {
        contentType: metrics.contentType,
        metrics: async (): Promise<string> => {
          const others = started.flatMap((r) => (r.handle.metrics ? [r.handle.metrics()] : []));
          if (others.length === 0) return metrics.metrics();
          const parts = [await metrics.getMetricsAsJSON(), ...(await Promise.all(others)).flat()];
          return AggregatorRegistry.aggregate(parts).metrics();
        },
      };
      if (tls) (await import('./net/serving-tls.ts')).registerTlsMetrics(metrics, tls);
      try {
        ops = await startOpsServer({
          port: config.adminPort,
          host: config.adminHost,
          logger,
          metrics: metricsSource,
          readiness,
          tls,
        });
      } catch (err) {
        throw listenError(err, 'admin', config.adminPort);
      }
      // Mail servers' new-mail hook; any node takes it and publishes to every transport.
      if (config.mailPushToken !== undefined) {
        const { mailPushHook } = await import('./transport/mail/push-hook.ts');
        ops.use(mailPushHook({ bus, token: config.mailPushToken, logger, metrics }));
      }
    }
    if (!child) {
      drainSub = bus.subscribe(Subjects.drain(nodeId), (msg) => {
        const reason = (msg.data as { reason?: unknown } | null)?.reason;
        void node.drain(typeof reason === 'string' ? reason : 'asked over the bus').then(() => node.close());
      });
    }

    // Every primary watches the cluster and raises alarms, whatever its roles (an edge tells when no admin is left).
    if (primary) {
      const { startAlarmService } = await import('./alarms/service.ts');
      alarms = await startAlarmService({
        nodeId,
        roles,
        bus,
        nats: config.bus !== 'inproc',
        membership,
        dataDir: config.data,
        settings: config.alarms,
        allowDestinations: config.transport?.allowDestinations,
        allowPorts: config.transport?.allowPorts,
        smsLink: config.push?.sms,
        logger,
        metrics,
      });
    }
    // Every role writes its device log records and usage counters through this one recorder.
    const recorder = createBusRecorder({ bus, nodeId, logger });
    const ctx: RoleContext = {
      config,
      nodeId,
      bus,
      logger,
      metrics,
      membership,
      recorder,
      ...(ops ? { ops } : {}),
      ...(worker ? { worker } : {}),
      ...(alarms ? { alarms } : {}),
      ...(tls ? { tls } : {}),
      announce,
    };
    const table = deps.table ?? (await roleTable(roles, config, deps, recorder));
    await startRoles(table, ctx, started, (r) => {
      if (isRole(r.name)) announce();
    });
    // lmdb creates its files with the umask (0644): the roles have opened theirs by now.
    if (primary) makePrivate(config.data);
  } catch (err) {
    await close().catch(() => {});
    throw err;
  }

  const devicePort = started.find((r) => r.handle.devicePort !== undefined)?.handle.devicePort;
  const registry = started.find((r) => r.handle.registry !== undefined)?.handle.registry;
  const node: RunningNode = {
    nodeId,
    roles,
    ...(devicePort === undefined ? {} : { devicePort }),
    adminPort: ops?.port ?? 0,
    logger,
    metrics,
    bus,
    ...(ops ? { ops } : {}),
    ...(registry ? { registry } : {}),
    readiness,
    async drain(reason = 'shutdown') {
      if (draining || closed) return;
      draining = true;
      logger.info({ reason }, 'draining');
      for (const { name, handle } of [...started].reverse()) {
        if (!handle.drain) continue;
        try {
          await withTimeout(handle.drain(), DRAIN_TIMEOUT_MS, `${name} drain`);
        } catch (err) {
          logger.warn({ err, role: name }, 'drain cut short');
        }
      }
    },
    close,
    closed: whenClosed,
    served,
    ...(tls ? { tls: tls.facts } : {}),
    reloadTls() {
      if (tls === undefined) {
        logger.info('SIGHUP: no TLS configured, nothing to reload');
        return;
      }
      try {
        const facts = tls.reload();
        logger.info({ certificate: facts }, 'TLS certificate reloaded');
      } catch (err) {
        logger.error({ err, certificate: tls.facts }, 'TLS reload failed; the old certificate still serves');
      }
      // Edge workers load their own: tell them too (each logs its own reload).
      for (const { handle } of started) handle.reloadTls?.();
    },
  };
  logger.info(
    { nodeId, roles, devicePort, adminPort: node.adminPort },
    child ? 'role process started' : 'node started',
  );
  return node;
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p,
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new GatewayError('internal', `${what} took longer than ${ms} ms`)), ms);
      timer.unref();
    }),
  ]).finally(() => clearTimeout(timer));
}

// ---- `mmgw start` ------------------------------------------------------------

/** Writes JSON through a temporary file and a rename: a reader sees all of it or nothing. */
export function writeFileAtomically(path: string, content: string): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, content);
  renameSync(tmp, path);
}

/**
 * Loads the config, starts the node, writes the ready file, and runs until
 * SIGTERM or SIGINT: then drains, closes and resolves 0. A second signal exits at once.
 */
export async function runStart(options: LoadConfigOptions): Promise<number> {
  const { loadConfig } = await import('./config.ts');
  const config = loadConfig(options);
  const node = await startNode(config);
  // Listened for before anyone can learn that the node is up (the ready file): a SIGTERM sent
  // the moment the file appears would otherwise meet the default action and kill the process.
  const signalled = new Promise<NodeJS.Signals | undefined>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
    void node.closed.then(() => resolve(undefined));
  });
  if (config.readyFile) {
    writeFileAtomically(
      config.readyFile,
      JSON.stringify({
        pid: process.pid,
        nodeId: node.nodeId,
        devicePort: node.devicePort ?? null,
        adminPort: node.adminPort,
      }),
    );
  }
  if (process.stdout.isTTY) {
    const { startBanner } = await import('./cli/start-banner.ts');
    process.stdout.write(
      startBanner({
        release: RELEASE,
        nodeId: node.nodeId,
        roles: node.roles,
        host: config.host,
        devicePort: node.devicePort,
        adminHost: config.adminHost,
        adminPort: node.adminPort,
        data: config.data,
        adminUsers: node.registry?.listAdminUsers().length,
        tls: node.tls,
        opsClientCerts: config.tls?.opsClientCa !== undefined,
      }),
    );
  }
  // SIGHUP: new certificates without dropping a session (it would end the process otherwise).
  const onHangup = () => node.reloadTls();
  if (config.tls !== undefined) process.on('SIGHUP', onHangup);
  const signal = await signalled;
  if (signal) {
    const again = () => process.exit(130);
    process.once('SIGTERM', again);
    process.once('SIGINT', again);
    node.logger.info({ signal }, 'shutting down');
    await node.drain(signal);
    await node.close();
  }
  process.off('SIGHUP', onHangup);
  node.logger.flush?.();
  // Everything is closed; should a library still hold a handle, do not hang on it.
  setTimeout(() => process.exit(0), 5000).unref();
  return 0;
}

/**
 * The node composer: one process, any set of roles, wired through the bus.
 *
 *   bus ─ membership (heartbeats) ─ router
 *    ├─ admin: registry (lmdb) + registry service on the bus
 *    ├─ transport: device requests for the devices hashed to this node
 *    ├─ transcoder: image and body shrinking, a queue group on the bus
 *    └─ edge: device sockets; asks admin over the bus who a device is
 *   ops endpoint: /healthz /readyz /metrics (+ /api/v1 mounted later)
 *
 * With edge.workers > 1 the edge runs in N worker processes (cluster.fork of
 * edge-worker.ts) that share the device port and reach the primary's roles
 * over the IPC bus; the primary runs the other roles and the ops endpoint,
 * and sums the workers' metrics into its /metrics.
 */
import cluster, { type Worker } from 'node:cluster';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { AggregatorRegistry, type Registry as PromRegistry } from 'prom-client';
import { GatewayError } from '../device-protocol/errors.ts';
import { type Bus, type NodeHeartbeat, Subjects } from './bus/bus.ts';
import { createBus, InProcessBus, serveIpcBus } from './bus/index.ts';
// Types only: the config schema (zod) is loaded where a config is parsed, never in an edge worker.
import type { Config, LoadConfigOptions, Role } from './config.ts';
import { reusePortEnv, startEdge } from './edge/index.ts';
import { type OpsServer, type Readiness, startOpsServer } from './ops/http.ts';
import { createLogger } from './ops/logger.ts';
import { createMetrics } from './ops/metrics.ts';
import { createBusRecorder } from './records/recorder.ts';
import { Membership, RendezvousRouter, startHeartbeat } from './router/index.ts';
import { busDeviceDirectory } from './store/directory.ts';
import type { Registry } from './store/registry.ts';

/** Running the build (dist/server/node.js) rather than the sources under tsx (server/node.ts)? */
const BUILT = import.meta.url.endsWith('.js');
const ROOT = fileURLToPath(new URL(BUILT ? '../..' : '..', import.meta.url));
/**
 * What an edge worker process runs: the build's worker entry when this is the
 * build; else the source one, under tsx like this process (the tests and
 * benchmarks start nodes from the sources).
 */
const WORKER_ENTRY = fileURLToPath(new URL(`./edge-worker.${BUILT ? 'js' : 'ts'}`, import.meta.url));
function workerExecArgv(): string[] {
  if (BUILT || process.execArgv.some((a) => a.includes('tsx'))) return process.execArgv;
  return [...process.execArgv, '--import', import.meta.resolve('tsx')];
}
export const RELEASE: string = (() => {
  try {
    return JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version ?? 'dev';
  } catch {
    return 'dev';
  }
})();

/** Heartbeat every second; a node not heard from for 3.5 s is out of every hash. */
const HEARTBEAT_INTERVAL_MS = 1000;
const HEARTBEAT_TTL_MS = 3500;
/** How long a worker or a drain may take before it is cut short. */
const WORKER_START_TIMEOUT_MS = 60_000;
const DRAIN_TIMEOUT_MS = 30_000;

export interface RunningNode {
  nodeId: string;
  roles: Role[];
  /** Device endpoint port (edge roles; the shared port of the workers). */
  devicePort?: number;
  /** Ops/admin endpoint port (absent in edge worker processes). */
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
}

export interface NodeDeps {
  logger?: Logger;
  /** Internal: this process is edge worker `index` of a primary (IPC bus, no ops endpoint). */
  worker?: { index: number };
}

interface RoleHandle {
  name: string;
  drain?(): Promise<void>;
  close(): Promise<void>;
}

function defaultNodeId(): string {
  const host =
    hostname()
      .replace(/[^A-Za-z0-9_-]/g, '-')
      .slice(0, 40) || 'node';
  return `${host}-${randomBytes(3).toString('hex')}`;
}

/**
 * The HMAC key of device tokens: MMGW_JWT_SECRET / config jwtSecret, else
 * `<data>/keys/jwt.key`, created on first start (32 random bytes, base64url,
 * mode 0600). Every edge that should accept another's tokens needs the same
 * key: in a cluster, set MMGW_JWT_SECRET on all of them.
 */
export function resolveJwtSecret(config: Config, logger: Logger): string {
  if (config.jwtSecret !== undefined) return config.jwtSecret;
  const path = join(config.data, 'keys', 'jwt.key');
  try {
    return readFileSync(path, 'utf8').trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const key = randomBytes(32).toString('base64url');
  try {
    // 'wx': if two processes start at once, one creates the key and the other reads it.
    writeFileSync(path, key + '\n', { flag: 'wx', mode: 0o600 });
    chmodSync(path, 0o600);
    logger.info({ path }, `generated a JWT key at ${path}`);
    return key;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    return readFileSync(path, 'utf8').trim();
  }
}

function busKind(url: string): { kind: 'inproc' } | { kind: 'nats'; url: string } {
  return url === 'inproc' ? { kind: 'inproc' } : { kind: 'nats', url };
}

/** A friendlier message for the usual listen failures. */
function listenError(err: unknown, what: string, port: number): unknown {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'EADDRINUSE')
    return new GatewayError('config.invalid', `${what} port ${port} is already in use`, { cause: err });
  if (code === 'EACCES')
    return new GatewayError('config.invalid', `no permission to listen on ${what} port ${port}`, {
      cause: err,
    });
  return err;
}

export async function startNode(config: Config, deps: NodeDeps = {}): Promise<RunningNode> {
  const worker = deps.worker;
  const nodeId = config.nodeId ?? defaultNodeId();
  // An edge worker is handed its config parsed: it never loads the config module and its schema.
  const configModule = worker ? undefined : await import('./config.ts');
  const roles: Role[] = configModule ? configModule.expandRoles(config.roles) : ['edge'];
  const logger = deps.logger ?? createLogger({ level: config.log.level, nodeId });
  const startedAt = Date.now();
  const metrics = createMetrics({ nodeId, roles, release: RELEASE });
  const handles: RoleHandle[] = [];
  const started = new Set<string>();
  let draining = false;
  let closed = false;
  let ops: OpsServer | undefined;
  let registry: Registry | undefined;
  let devicePort: number | undefined;
  let edgeSessions: () => number = () => 0;
  let edgeConnected: () => number = () => 0;
  let workers: EdgeWorkers | undefined;

  if (configModule)
    logger.info(
      { config: configModule.redactedConfig(config), nodeId, roles, release: RELEASE },
      'starting node',
    );

  const bus =
    worker && config.bus === 'inproc'
      ? await createBus({ kind: 'ipc', logger })
      : await createBus({ ...busKind(config.bus), name: nodeId, logger });
  const membership = new Membership({ bus, logger });
  membership.start();

  const useWorkers = !worker && roles.includes('edge') && config.edge.workers > 1;
  const readiness = (): Readiness => {
    const reasons: string[] = [];
    if (draining) reasons.push('node is draining');
    for (const role of roles) if (!started.has(role)) reasons.push(`${role}: not started`);
    if (roles.includes('edge') && membership.nodes('transport').length === 0) {
      reasons.push('edge: no transport node known');
    }
    if (workers) reasons.push(...workers.notReady());
    return { ready: reasons.length === 0, reasons };
  };

  let resolveClosed!: () => void;
  const whenClosed = new Promise<void>((resolve) => (resolveClosed = resolve));
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closed = true;
    closing ??= shutdown().finally(resolveClosed);
    return closing;
  };
  const shutdown = async (): Promise<void> => {
    stopHeartbeat?.();
    drainSub?.unsubscribe();
    if (workers) await workers.stop();
    // Reverse start order: the edge first (no new work), the registry last.
    for (const h of [...handles].reverse()) {
      try {
        await h.close();
      } catch (err) {
        logger.error({ err, role: h.name }, 'role failed to close');
      }
    }
    membership.stop();
    await ops?.close();
    try {
      await bus.close();
    } catch (err) {
      logger.debug({ err }, 'bus close failed');
    }
    await registry?.close();
    logger.info({ nodeId }, 'node stopped');
  };

  let stopHeartbeat: (() => void) | undefined;
  let drainSub: ReturnType<Bus['subscribe']> | undefined;
  try {
    if (!worker) {
      const metricsSource = {
        contentType: metrics.contentType,
        metrics: () => (workers ? workers.metricsText(metrics) : metrics.metrics()),
      };
      try {
        ops = await startOpsServer({
          port: config.adminPort,
          host: config.host,
          logger,
          metrics: metricsSource,
          readiness,
        });
      } catch (err) {
        throw listenError(err, 'admin', config.adminPort);
      }
      // Mail servers' new-mail hook; any node takes it and publishes to every transport.
      if (config.mailPushToken !== undefined) {
        const { mailPushHook } = await import('./transport/mail/index.ts');
        ops.use(mailPushHook({ bus, token: config.mailPushToken, logger, metrics }));
      }
    }

    // Every role writes its device log records and usage counters through this one recorder.
    const recorder = createBusRecorder({ bus, nodeId, logger });
    if (roles.includes('admin')) {
      const [{ Registry }, { startAdminRole }, { createUiHandler }] = await Promise.all([
        import('./store/registry.ts'),
        import('../admin/index.ts'),
        import('../admin/ui/serve.ts'),
      ]);
      registry = await Registry.open(config.data);
      const admin = await startAdminRole({
        bus,
        registry,
        logger,
        dataDir: config.data,
        ...(ops ? { ops } : {}),
        membership,
        ...(config.records ? { retention: config.records } : {}),
        ...(config.admin ? { api: config.admin } : {}),
        firstAdmin: { name: config.admin?.firstAdminName, password: config.admin?.firstAdminPassword },
        credentialsKey: config.credentialsKey,
      });
      handles.push({ name: 'admin', close: () => admin.close() });
      started.add('admin');
      // The web UI on the admin port (built here on first start when admin/ui/dist is missing).
      ops?.use(await createUiHandler({ logger }));
    }
    // Closed after the edge and transport (their last records still go out), before the admin that stores them.
    handles.push({ name: 'recorder', close: () => recorder.close() });
    if (roles.includes('transport')) {
      const [
        { busDeviceProfileFetch, DeviceProfiles, startTransport, TransportStorage, watchDeviceSessions },
        { openImService },
        { openMailService, registryMediaProfiles },
      ] = await Promise.all([
        import('./transport/index.ts'),
        import('./transport/im/index.ts'),
        import('./transport/mail/index.ts'),
      ]);
      // The transport role's one lmdb environment: the accounts in it outlive a restart of the node.
      const storage = TransportStorage.open(config.data);
      const mail = openMailService({
        dataDir: config.data,
        storage,
        logger,
        bus,
        recorder,
        credentialsKey: config.credentialsKey,
        // Capability profiles per model and service policies, where this node holds the registry.
        ...(registry ? { mediaProfiles: registryMediaProfiles(registry) } : {}),
      });
      // Chat accounts too; their XMPP sessions come back at start and when a device reconnects.
      const im = openImService({
        dataDir: config.data,
        storage,
        logger,
        bus,
        recorder,
        credentialsKey: config.credentialsKey,
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
          dataDir: config.data,
          methods: [...mail.methods, ...im.methods],
          profiles,
        });
      } catch (err) {
        await im.close();
        await mail.close();
        await storage.close();
        throw err;
      }
      // Device session up/down from the edges, for the devices pinned to this node (mail can add a hook).
      const transportRouter = new RendezvousRouter(membership);
      const sessionWatch = watchDeviceSessions({
        bus,
        holds: (deviceId) => (transportRouter.pick(deviceId) ?? nodeId) === nodeId,
        hooks: [
          {
            // Operator-provisioned accounts first (stored and brought up), then every stored chat account.
            up: async (id, push) => {
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
      void im.restoreAll().catch((err) => logger.warn({ err }, 'restoring chat accounts failed'));
      handles.push({
        name: 'transport',
        close: async () => {
          sessionWatch.close();
          transportRouter.close();
          await transport.close();
          await im.close();
          await mail.close();
          await storage.close();
        },
      });
      started.add('transport');
    }
    if (roles.includes('transcoder')) {
      // Stateless: a queue group on the bus, so several transcoders share the work.
      const { startTranscoder } = await import('../transcoder/index.ts');
      const transcoder = await startTranscoder({ bus, dataDir: config.data, logger });
      handles.push({ name: 'transcoder', close: () => transcoder.stop() });
      started.add('transcoder');
    }

    const heartbeat = (): NodeHeartbeat => {
      const usage = process.cpuUsage();
      return {
        nodeId,
        roles: useWorkers ? roles.filter((r) => r !== 'edge') : roles,
        release: RELEASE,
        startedAt,
        ttlMs: HEARTBEAT_TTL_MS,
        draining,
        sessions: edgeSessions(),
        connected: edgeConnected(),
        rssBytes: process.memoryUsage.rss(),
        cpuSeconds: (usage.user + usage.system) / 1e6,
      };
    };
    // Count ourselves at once: a one-process node must not wait for its own first heartbeat to come back.
    membership.observe(heartbeat());
    stopHeartbeat = startHeartbeat(bus, heartbeat, HEARTBEAT_INTERVAL_MS);
    drainSub = bus.subscribe(Subjects.drain(nodeId), (msg) => {
      const reason = (msg.data as { reason?: unknown } | null)?.reason;
      void node.drain(typeof reason === 'string' ? reason : 'asked over the bus').then(() => node.close());
    });

    if (roles.includes('edge')) {
      if (useWorkers) {
        if (!(bus instanceof InProcessBus) && config.bus === 'inproc') {
          throw new GatewayError('internal', 'edge workers need the in-process bus of the primary');
        }
        workers = new EdgeWorkers(config, nodeId, bus, logger);
        devicePort = await workers.start();
        edgeSessions = () => 0;
        handles.push({ name: 'edge', drain: () => workers!.drain(), close: async () => {} });
      } else {
        const jwtSecret = resolveJwtSecret(config, logger);
        const router = new RendezvousRouter(membership);
        let edge: Awaited<ReturnType<typeof startEdge>>;
        try {
          edge = await startEdge({
            bus,
            nodeId,
            host: config.host,
            port: config.port,
            engine: config.engine,
            directory: busDeviceDirectory(bus),
            router,
            jwtSecret,
            heartbeatMs: config.edge.heartbeatMs,
            resumeWindowMs: config.edge.resumeWindowMs,
            compression: config.edge.compression,
            limits: config.edge.limits,
            ...(worker ? { reusePort: true } : {}),
            recorder,
            logger,
            metrics,
          });
        } catch (err) {
          router.close();
          throw listenError(err, 'device', config.port);
        }
        devicePort = edge.port;
        edgeSessions = () => edge.sessionCount();
        edgeConnected = () => edge.connectedCount();
        handles.push({
          name: 'edge',
          drain: () => edge.drain(),
          close: async () => {
            await edge.close();
            router.close();
          },
        });
      }
      started.add('edge');
    }
  } catch (err) {
    await close().catch(() => {});
    throw err;
  }

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
      for (const h of [...handles].reverse()) {
        if (!h.drain) continue;
        try {
          await withTimeout(h.drain(), DRAIN_TIMEOUT_MS, `${h.name} drain`);
        } catch (err) {
          logger.warn({ err, role: h.name }, 'drain cut short');
        }
      }
    },
    close,
    closed: whenClosed,
  };
  logger.info({ nodeId, roles, devicePort, adminPort: node.adminPort }, 'node started');
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

// ---- edge worker processes -------------------------------------------------

/** The key of our own IPC messages (the IPC bus uses its own key on the same channel). */
const WORKER_TAG = '$mmgwWorker';

type WorkerMessage =
  | { type: 'hello' }
  | { type: 'init'; config: Config; nodeId: string; port: number }
  | { type: 'ready'; port: number }
  | { type: 'metrics'; id: number; data?: object[] }
  | { type: 'drain' };

function tagged(message: unknown): WorkerMessage | undefined {
  return message !== null && typeof message === 'object' && WORKER_TAG in message
    ? ((message as Record<string, unknown>)[WORKER_TAG] as WorkerMessage)
    : undefined;
}

interface WorkerSlot {
  index: number;
  worker?: Worker;
  ready: boolean;
  stopServing?: () => void;
}

/**
 * Forks and watches the edge workers. Worker 0 binds the configured port
 * first (possibly 0 = any) and the others then bind the port it got: uWS
 * listens with SO_REUSEPORT and the portable engine's node:http server shares
 * its listening socket through the cluster module, so every worker accepts on
 * the same port. A worker that dies is forked again (the sockets it held are
 * lost; their devices resume on another worker).
 */
class EdgeWorkers {
  private readonly slots: WorkerSlot[];
  private port = 0;
  private stopping = false;
  private nextMetricsId = 0;
  private readonly pendingMetrics = new Map<number, (data: object[]) => void>();

  constructor(
    private readonly config: Config,
    private readonly nodeId: string,
    private readonly bus: Bus,
    private readonly logger: Logger,
  ) {
    this.slots = Array.from({ length: config.edge.workers }, (_, index) => ({ index, ready: false }));
  }

  async start(): Promise<number> {
    // The key file must exist before the workers read it.
    resolveJwtSecret(this.config, this.logger);
    this.port = await this.fork(this.slots[0], this.config.port);
    await Promise.all(this.slots.slice(1).map((slot) => this.fork(slot, this.sharedPort())));
    this.logger.info({ workers: this.slots.length, port: this.port }, 'edge workers started');
    return this.port;
  }

  /**
   * The port a worker binds. uWS: the port worker 0 got (SO_REUSEPORT joins it).
   * Portable: the configured one, even 0, because the cluster module shares one
   * listening handle per (address, port) asked for, and with 0 hands every
   * worker the same ephemeral port.
   */
  private sharedPort(): number {
    return this.config.engine === 'portable' ? this.config.port : this.port;
  }

  notReady(): string[] {
    return this.slots.filter((s) => !s.ready).map((s) => `edge worker ${s.index}: not ready`);
  }

  /** The primary's metrics plus every worker's, as Prometheus text (series keep their node label). */
  async metricsText(own: PromRegistry): Promise<string> {
    const parts: object[][] = [await own.getMetricsAsJSON()];
    const asks = this.slots
      .filter((s) => s.worker && s.ready)
      .map(
        (s) =>
          new Promise<object[]>((resolve) => {
            const id = ++this.nextMetricsId;
            const timer = setTimeout(() => {
              this.pendingMetrics.delete(id);
              resolve([]);
            }, 2000);
            this.pendingMetrics.set(id, (data) => {
              clearTimeout(timer);
              resolve(data);
            });
            this.send(s.worker!, { type: 'metrics', id });
          }),
      );
    parts.push(...(await Promise.all(asks)));
    return AggregatorRegistry.aggregate(parts).metrics();
  }

  async drain(): Promise<void> {
    for (const s of this.slots) if (s.worker) this.send(s.worker, { type: 'drain' });
  }

  /** The worker may be gone already (its channel closes before 'exit'): never throw for that. */
  private send(worker: Worker, message: WorkerMessage): void {
    if (!worker.isConnected()) return;
    try {
      worker.send({ [WORKER_TAG]: message }, undefined, (err: Error | null) => {
        if (err) this.logger.debug({ err }, 'message to edge worker not delivered');
      });
    } catch (err) {
      this.logger.debug({ err }, 'message to edge worker not delivered');
    }
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await this.drain();
    await Promise.all(
      this.slots.map(
        (s) =>
          new Promise<void>((resolve) => {
            const w = s.worker;
            if (!w || w.isDead()) return resolve();
            const timer = setTimeout(() => w.kill('SIGKILL'), DRAIN_TIMEOUT_MS);
            w.once('exit', () => {
              clearTimeout(timer);
              resolve();
            });
          }),
      ),
    );
    for (const s of this.slots) s.stopServing?.();
  }

  private async fork(slot: WorkerSlot, port: number): Promise<number> {
    cluster.setupPrimary({
      exec: WORKER_ENTRY,
      execArgv: workerExecArgv(),
      args: ['--internal-edge-worker', String(slot.index)],
      serialization: 'advanced',
    });
    // uWS needs SO_REUSEPORT (a preload shim, see server/edge/reuse-port.ts); the portable
    // engine's node:http shares the listening handle through the cluster module instead.
    // Port 0: the first worker may bind any port ('*'), the others then share the one it got.
    const env = this.config.engine === 'uws' ? await reusePortEnv(port === 0 ? '*' : port) : {};
    const worker = cluster.fork(env);
    worker.on('error', (err) => this.logger.debug({ err, worker: slot.index }, 'edge worker channel error'));
    slot.worker = worker;
    slot.ready = false;
    slot.stopServing = serveIpcBus(this.bus as InProcessBus, worker, { logger: this.logger });
    return new Promise<number>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new GatewayError('internal', `edge worker ${slot.index} did not start in time`)),
        WORKER_START_TIMEOUT_MS,
      );
      worker.on('message', (message: unknown) => {
        const m = tagged(message);
        // The worker says hello once it listens: a message sent before that would be lost.
        if (m?.type === 'hello') {
          this.send(worker, {
            type: 'init',
            config: this.config,
            nodeId: `${this.nodeId}-w${slot.index}`,
            port,
          });
        } else if (m?.type === 'ready') {
          clearTimeout(timer);
          slot.ready = true;
          resolve(m.port);
        } else if (m?.type === 'metrics' && m.data) {
          this.pendingMetrics.get(m.id)?.(m.data);
          this.pendingMetrics.delete(m.id);
        }
      });
      worker.on('exit', (code, signal) => {
        clearTimeout(timer);
        slot.ready = false;
        slot.stopServing?.();
        if (this.stopping) return;
        reject(
          new GatewayError('internal', `edge worker ${slot.index} exited (${signal ?? code}) while starting`),
        );
        this.logger.error({ worker: slot.index, code, signal }, 'edge worker died; forking it again');
        setTimeout(() => {
          if (!this.stopping)
            this.fork(slot, this.sharedPort()).catch((err) =>
              this.logger.error({ err }, 'edge worker restart failed'),
            );
        }, 1000).unref();
      });
    });
  }
}

/** Inside an edge worker process: wait for the primary's init, run the edge, answer metrics and drain. */
export async function runEdgeWorker(index: number): Promise<number> {
  if (!cluster.isWorker || typeof process.send !== 'function') {
    throw new GatewayError('internal', '--internal-edge-worker is for the processes the primary forks');
  }
  const init = await new Promise<Extract<WorkerMessage, { type: 'init' }>>((resolve) => {
    const onMessage = (message: unknown) => {
      const m = tagged(message);
      if (m?.type === 'init') {
        process.off('message', onMessage);
        resolve(m);
      }
    };
    process.on('message', onMessage);
    process.send?.({ [WORKER_TAG]: { type: 'hello' } });
  });
  const config: Config = { ...init.config, port: init.port, nodeId: init.nodeId, roles: ['edge'] };
  const node = await startNode(config, { worker: { index } });
  const send = (m: WorkerMessage) => process.send?.({ [WORKER_TAG]: m });
  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= node
      .drain()
      .then(() => node.close())
      .finally(() => process.disconnect?.());
    return stopping;
  };
  process.on('message', (message: unknown) => {
    const m = tagged(message);
    if (m?.type === 'metrics')
      void node.metrics.getMetricsAsJSON().then((data) => send({ type: 'metrics', id: m.id, data }));
    else if (m?.type === 'drain') void stop();
  });
  // The primary going away (crash, kill -9) must not leave orphans holding the port.
  process.on('disconnect', () => void stop());
  process.on('SIGTERM', () => void stop());
  process.on('SIGINT', () => void stop());
  send({ type: 'ready', port: node.devicePort ?? init.port });
  await new Promise<void>((resolve) => process.once('disconnect', resolve));
  await stop();
  return 0;
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
  const signal = await new Promise<NodeJS.Signals | undefined>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
    void node.closed.then(() => resolve(undefined));
  });
  if (signal) {
    const again = () => process.exit(130);
    process.once('SIGTERM', again);
    process.once('SIGINT', again);
    node.logger.info({ signal }, 'shutting down');
    await node.drain(signal);
    await node.close();
  }
  node.logger.flush?.();
  // Everything is closed; should a library still hold a handle, do not hang on it.
  setTimeout(() => process.exit(0), 5000).unref();
  return 0;
}

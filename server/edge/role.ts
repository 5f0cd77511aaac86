/**
 * The edge role of a node: the device endpoint in this process, or (config
 * edge.workers > 1, in the primary) the edge worker processes that share the
 * device port. Each in-process edge also answers a transport that (re)started
 * and asks which sessions the edges hold (Subjects.edgeSessions) by
 * announcing them again.
 *
 * In cluster mode the edge authenticates Hello and Resume from its watched
 * copy of the shared `device_auth` table (server/store/device-auth.ts), so
 * devices connect while every admin node is down; the admin is asked over the
 * bus only for devices the copy lacks.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Logger } from 'pino';
import { GatewayError } from '../../device-protocol/errors.ts';
import { type Bus, Subjects } from '../bus/bus.ts';
import { InProcessBus } from '../bus/index.ts';
import type { Config } from '../config.ts';
import { listenError, type RoleContext, type RoleDefinition, type RoleHandle } from '../roles.ts';
import { RendezvousRouter } from '../router/index.ts';
import { openDeviceAuthTable, sharedDeviceDirectory, type WatchedDirectory } from '../store/device-auth.ts';
import { busDeviceDirectory } from '../store/directory.ts';
import { isClusterMode, leasedOpener } from '../store/shared/cluster.ts';
import { EdgeWorkers } from '../supervision/edge-workers.ts';
import { roleRestartsCounter } from '../supervision/supervisor.ts';
import { type EdgeHandle, startEdge } from './edge.ts';
import { uwsUnavailable } from './engines/uws-binary.ts';

/** Session-up events sent per event-loop turn when announcing every session: a busy edge holds 20,000. */
const ANNOUNCE_BATCH = 256;

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

export const edgeRole: RoleDefinition = {
  name: 'edge',
  start(given) {
    const ctx = withUsableEngine(given);
    // The key file exists before any worker reads it.
    const jwtSecret = resolveJwtSecret(ctx.config, ctx.logger);
    return ctx.worker === undefined && ctx.config.edge.workers > 1
      ? startEdgeWorkers(ctx)
      : startEdgeHere(ctx, jwtSecret);
  },
};

/**
 * uws asked where it has no binary (a Node newer than its build): the portable engine, said once in the
 * log. Workers get the config from the primary, so they start with the engine decided here.
 */
function withUsableEngine(ctx: RoleContext): RoleContext {
  // Config made it portable (or refused uws) when TLS is on; said here, once per process that listens.
  if (ctx.config.tls !== undefined) {
    ctx.logger.info(
      { engine: ctx.config.engine },
      'the edge serves TLS with the portable engine (the uWebSockets.js build has no TLS)',
    );
  }
  if (ctx.config.engine !== 'uws') return ctx;
  const why = uwsUnavailable();
  if (why === undefined) return ctx;
  ctx.logger.warn({ reason: why, node: process.version }, 'the edge uses the portable engine: %s', why);
  return { ...ctx, config: { ...ctx.config, engine: 'portable' } };
}

async function startEdgeHere(ctx: RoleContext, jwtSecret: string): Promise<RoleHandle> {
  const { bus, config, logger } = ctx;
  const router = new RendezvousRouter(ctx.membership);
  const shared = isClusterMode(config) ? watchDeviceAuth(ctx) : undefined;
  let edge: EdgeHandle;
  try {
    edge = await startEdge({
      bus,
      nodeId: ctx.nodeId,
      host: config.host,
      port: config.port,
      engine: config.engine,
      directory: shared?.directory ?? busDeviceDirectory(bus),
      router,
      jwtSecret,
      heartbeatMs: config.edge.heartbeatMs,
      resumeWindowMs: config.edge.resumeWindowMs,
      compression: config.edge.compression,
      limits: config.edge.limits,
      ...(ctx.worker ? { reusePort: true } : {}),
      tls: ctx.tls,
      recorder: ctx.recorder,
      // Each worker has its own (its index is stable across restarts; a device resumes on any worker).
      sessionFile: join(
        config.data,
        'edge',
        ctx.worker === undefined ? 'sessions.json' : `sessions-w${ctx.worker.index}.json`,
      ),
      logger,
      metrics: ctx.metrics,
    });
  } catch (err) {
    router.close();
    await shared?.close();
    throw listenError(err, 'device', config.port);
  }
  const asked = bus.subscribe(Subjects.edgeSessions, () => announceSessions(edge, bus, logger));
  return {
    devicePort: edge.port,
    sessionCount: () => edge.sessionCount(),
    connectedCount: () => edge.connectedCount(),
    drain: () => edge.drain(),
    async stop() {
      asked.unsubscribe();
      await edge.close();
      router.close();
      await shared?.close();
    },
  };
}

/** The directory on the process's cluster state, opened in the background (the bus answers meanwhile). */
function watchDeviceAuth(ctx: RoleContext): { directory: WatchedDirectory; close(): Promise<void> } {
  const opener = leasedOpener(ctx.config, ctx.nodeId, ctx.logger, (state) =>
    openDeviceAuthTable(state, ctx.logger),
  );
  const directory = sharedDeviceDirectory({
    fallback: busDeviceDirectory(ctx.bus),
    logger: ctx.logger,
    open: opener.open,
  });
  return {
    directory,
    async close() {
      directory.close();
      await opener.close();
    },
  };
}

/** Publishes a session-up for every session the edge holds, a batch per event-loop turn. */
export function announceSessions(edge: Pick<EdgeHandle, 'sessions'>, bus: Bus, logger: Logger): void {
  const sessions = edge.sessions();
  logger.debug({ sessions: sessions.length }, 'a transport asked for the sessions held here');
  let next = 0;
  const batch = (): void => {
    const end = Math.min(next + ANNOUNCE_BATCH, sessions.length);
    try {
      for (; next < end; next++) bus.publish(Subjects.sessionUp, sessions[next]);
    } catch (err) {
      // The bus is closing: the node is stopping, nobody needs the rest.
      logger.debug({ err }, 'announcing sessions stopped');
      return;
    }
    if (next < sessions.length) setImmediate(batch);
  };
  batch();
}

async function startEdgeWorkers(ctx: RoleContext): Promise<RoleHandle> {
  const { bus, config, logger } = ctx;
  if (!(bus instanceof InProcessBus) && config.bus === 'inproc') {
    throw new GatewayError('internal', 'edge workers need the in-process bus of the primary');
  }
  const workers = new EdgeWorkers(config, ctx.nodeId, bus, logger, { restarts: roleRestartsCounter(ctx) });
  let devicePort: number;
  try {
    devicePort = await workers.start();
  } catch (err) {
    await workers.stop();
    throw err;
  }
  return {
    devicePort,
    // Each worker is a node of its own in the membership, with the sessions it holds.
    advertised: () => false,
    readiness: () => workers.notReady(),
    metrics: () => workers.metrics(),
    reloadTls: () => workers.reloadTls(),
    drain: () => workers.drain(),
    stop: () => workers.stop(),
  };
}

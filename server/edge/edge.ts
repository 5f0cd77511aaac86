/**
 * startEdge: the device endpoint of a node. Picks the engine, builds the
 * engine-independent core and ties them together.
 */
import cluster from 'node:cluster';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { GatewayError, toGatewayError } from '../../device-protocol/errors.ts';
import { DEFAULT_LIMITS } from '../../device-protocol/messages.ts';
import type { Bus, DeviceDirectory, DeviceRouter, DeviceSessionEvent } from '../bus/bus.ts';
import type { ServingTls } from '../net/serving-tls.ts';
import type { Recorder } from '../records/types.ts';
import { DEFAULT_TOKEN_TTL_SEC, DeviceTokens } from './auth.ts';
import { EdgeCore } from './edge-core.ts';
import { EDGE_SILENT_AFTER_HEARTBEATS, MAX_PROFILE_HEARTBEAT_MS } from './heartbeat.ts';
import type { EdgeEngine, EngineOptions } from './engines/engine.ts';
import { type EdgeLimitOptions, resolveEdgeLimits } from './limits.ts';
import { EdgeStats, registerEdgeMetrics } from './metrics.ts';
import { reusePortActive } from './reuse-port.ts';
import { takeSessionFile, writeSessionFile } from './session-file.ts';

export interface EdgeOptions {
  bus: Bus;
  nodeId: string;
  /** Listen address; default all interfaces (IPv6 and IPv4). */
  host?: string;
  /** 0 = ephemeral; read the port from the handle. */
  port: number;
  engine: 'uws' | 'portable';
  directory: DeviceDirectory;
  router: DeviceRouter;
  /** HS256 key of the device tokens (at least 16 characters). */
  jwtSecret: string;
  /** Lifetime of the token in Welcome; default 3600 s. */
  tokenTtlSec?: number;
  /** Ping interval asked of devices whose service profile sets none; silence for 2.5× a session's closes its carrier. Default 30 s. */
  heartbeatMs?: number;
  /** How long a session without carrier is kept for Resume. Default 120 s. */
  resumeWindowMs?: number;
  /** Compress the WebSocket carriers of devices that ask (SPEC.md §4.4). Default true. */
  compression?: boolean;
  /** A compressing carrier idle this long parks its contexts (~1 KiB each instead of ~13). Default 30 s. */
  compressionIdleMs?: number;
  /** Bus timeout of a device request to its transport node. Default 30 s. */
  requestTimeoutMs?: number;
  /** Bus timeout of takeover and claim messages to other edges. Default 3 s. */
  busTimeoutMs?: number;
  /** Per-device limits, and those before authentication (Hello deadline, connection caps, failed attempts). */
  limits?: EdgeLimitOptions;
  /** Per-device log records and usage counters (connects, resumes, bytes …); default: none kept. */
  recorder?: Recorder;
  /**
   * Where the sessions go when this edge stops and no other edge takes them,
   * and come back from on start (session-file.ts); default: not kept.
   */
  sessionFile?: string;
  /**
   * This process shares the port with other worker processes: refuse to start
   * unless that works (SO_REUSEPORT preload of reuse-port.ts, or a node:cluster
   * worker for the portable engine) instead of failing with "port in use".
   */
  reusePort?: boolean;
  /** wss:// and https:// long-poll (portable engine only: the pinned uWebSockets.js build has no TLS). */
  tls?: ServingTls | undefined;
  logger: Logger;
  metrics?: Registry;
  /** The edge's one clock (tokens, heartbeats, claims between edges, records, the drain grace); default Date.now. */
  now?: () => number;
}

export interface EdgeHandle {
  port: number;
  sessionCount(): number;
  /** Sessions with a carrier attached (devices online now). */
  connectedCount(): number;
  /** Every session held (attached or waiting for a resume), as the edge announced it on Subjects.sessionUp. */
  sessions(): DeviceSessionEvent[];
  /**
   * Bye session.draining (resumable, reconnectAfterMs 1–5 s) to every carrier,
   * stop accepting, close the carriers, then hand every session over to a
   * surviving edge (drain-handover.ts). Sessions no survivor took stay here
   * (detached, claimable) until close().
   */
  drain(reason?: string): Promise<void>;
  /**
   * Drains if not done yet, then closes everything. With no surviving edge and
   * a sessionFile, the sessions left are written there first.
   */
  close(): Promise<void>;
}

const DRAIN_GRACE_MS = 2000;
/** Requests in progress may take this long to be answered before the sessions are handed over. */
const DRAIN_SETTLE_MS = 5000;
/** The hand-over ends by then: the drain timeouts of node.ts and edge-workers.ts are 30 s. */
const HANDOVER_LIMIT_MS = 20_000;

/**
 * The engines' own WebSocket message limit. Well above maxFrameBytes, so that
 * the core sees an oversized frame and answers it with a fatal
 * protocol.frame_too_large Error before closing (an engine that hits its own
 * limit closes with 1009 and no Error frame). Bounded, because the engine
 * buffers a whole message before handing it over: 8× the frame limit, at
 * least 1 MiB more than it, at most 64 MiB.
 */
export function enginePayloadLimit(maxFrameBytes: number): number {
  const wanted = Math.min(Math.max(maxFrameBytes * 8, maxFrameBytes + 1024 * 1024), 64 * 1024 * 1024);
  return Math.max(wanted, maxFrameBytes + 1024);
}

function positive(name: string, v: number | undefined, fallback: number): number {
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
    throw new GatewayError('config.invalid', `Edge option ${name} must be a positive number.`, {
      field: name,
    });
  }
  return v;
}

export async function startEdge(options: EdgeOptions): Promise<EdgeHandle> {
  const o = options;
  if (o.engine !== 'uws' && o.engine !== 'portable') {
    throw new GatewayError('config.invalid', `Unknown edge engine "${String(o.engine)}" (uws or portable).`, {
      field: 'engine',
    });
  }
  if (!Number.isInteger(o.port) || o.port < 0 || o.port > 65535) {
    throw new GatewayError('config.invalid', 'The edge port must be 0..65535.', { field: 'port' });
  }
  if (typeof o.nodeId !== 'string' || o.nodeId.length === 0) {
    throw new GatewayError('config.invalid', 'The edge needs a node id.', { field: 'nodeId' });
  }
  let limits: ReturnType<typeof resolveEdgeLimits>;
  try {
    limits = resolveEdgeLimits(o.limits);
  } catch (err) {
    throw new GatewayError('config.invalid', (err as Error).message, { field: 'limits' });
  }
  const now = o.now ?? Date.now;
  const heartbeatMs = positive('heartbeatMs', o.heartbeatMs, 30_000);
  const resumeWindowMs = positive('resumeWindowMs', o.resumeWindowMs, 120_000);
  const requestTimeoutMs = positive('requestTimeoutMs', o.requestTimeoutMs, 30_000);
  const busTimeoutMs = positive('busTimeoutMs', o.busTimeoutMs, 3000);
  const tokens = new DeviceTokens(
    o.jwtSecret,
    positive('tokenTtlSec', o.tokenTtlSec, DEFAULT_TOKEN_TTL_SEC),
    now,
  );
  if (o.tls !== undefined && o.engine === 'uws') {
    throw new GatewayError(
      'config.invalid',
      'The uws engine cannot serve TLS (its uWebSockets.js build has none): use the portable engine.',
      { field: 'engine' },
    );
  }
  if (o.reusePort && !(o.engine === 'portable' && cluster.isWorker) && !reusePortActive(o.port)) {
    throw new GatewayError(
      'config.invalid',
      `Edge workers sharing port ${o.port} need SO_REUSEPORT: start them with the environment from reusePortEnv() (server/edge/reuse-port.ts)${o.engine === 'portable' ? ' or as node:cluster workers' : ''}.`,
      { field: 'reusePort' },
    );
  }
  const logger = o.logger.child({ component: 'edge', engine: o.engine });
  const stats = new EdgeStats();
  const core = new EdgeCore({
    bus: o.bus,
    nodeId: o.nodeId,
    directory: o.directory,
    router: o.router,
    tokens,
    heartbeatMs,
    resumeWindowMs,
    requestTimeoutMs,
    busTimeoutMs,
    compression: o.compression ?? true,
    compressionIdleMs: positive('compressionIdleMs', o.compressionIdleMs, 30_000),
    limits,
    logger,
    now,
    stats,
    ...(o.recorder === undefined ? {} : { recorder: o.recorder }),
  });
  const engineOptions: EngineOptions = {
    host: o.host ?? '',
    port: o.port,
    core,
    maxPayloadBytes: enginePayloadLimit(limits.maxFrameBytes),
    maxPollBodyBytes: limits.maxFrameBytes * 2 + 64 * 1024,
    // The core closes at maxQueuedBytes; one more outgoing frame and the fatal Error must still fit.
    maxBackpressureBytes: limits.maxQueuedBytes + DEFAULT_LIMITS.maxFrameBytes + 64 * 1024,
    // Above the silence of the longest heartbeat a service profile may set (heartbeat.ts).
    idleTimeoutSec: Math.min(
      960,
      Math.ceil((Math.max(heartbeatMs, MAX_PROFILE_HEARTBEAT_MS) * EDGE_SILENT_AFTER_HEARTBEATS) / 1000) + 16,
    ),
    headersTimeoutMs: Math.min(60_000, limits.helloTimeoutMs),
    tls: o.tls,
  };
  // Only the engine in use is loaded: the portable one's ws would cost a uws edge worker ~6 MiB.
  const start =
    o.engine === 'uws'
      ? (await import('./engines/uws-engine.ts')).startUwsEngine
      : (await import('./engines/portable-engine.ts')).startPortableEngine;
  const engine: EdgeEngine = await start(engineOptions);
  core.wsDriver = engine.driver;
  if (o.sessionFile !== undefined) restoreSessions(core, o.sessionFile, resumeWindowMs, logger);
  core.start();
  const unregister = o.metrics ? registerEdgeMetrics(o.metrics, stats) : () => {};
  logger.info({ port: engine.port, tls: o.tls !== undefined }, 'edge listening');

  let drained: Promise<void> | undefined;
  let closed: Promise<void> | undefined;
  /** Whether another edge answered the hand-over: if none did, this is the last edge. */
  let survivor = false;
  const drain = (reason?: string): Promise<void> => {
    drained ??= (async () => {
      const started = now();
      logger.info({ reason: reason ?? 'drain', sessions: core.sessionCount }, 'edge draining');
      engine.stopAccepting();
      core.drain();
      // Give the Bye frames a moment to reach the devices before the sockets are cut.
      const until = started + DRAIN_GRACE_MS;
      while (engine.openSockets() > 0 && now() < until) await new Promise((r) => setTimeout(r, 20));
      const outcome = await core.handOver(DRAIN_SETTLE_MS, started + HANDOVER_LIMIT_MS);
      survivor = outcome.survivor;
      logger.info(outcome, 'edge sessions handed over');
    })();
    return drained;
  };
  return {
    port: engine.port,
    sessionCount: () => core.sessionCount,
    connectedCount: () => core.connectedCount,
    sessions: () => Array.from(core.table.values(), (s) => ({ deviceId: s.imei, sessionId: s.id })),
    drain,
    close() {
      closed ??= (async () => {
        await drain('close');
        if (o.sessionFile !== undefined && !survivor) saveSessions(core, o.sessionFile, logger);
        core.close();
        await engine.close();
        unregister();
        logger.info('edge closed');
      })();
      return closed;
    },
  };
}

/** Takes back the sessions the last stop wrote; a bad file is logged and set aside, never fatal. */
function restoreSessions(core: EdgeCore, path: string, resumeWindowMs: number, logger: Logger): void {
  try {
    const loaded = takeSessionFile(path, core.now(), resumeWindowMs);
    if (loaded === undefined) return;
    const restored = core.restoreSessions(loaded.sessions);
    logger.info(
      { path, restored, expired: loaded.expired },
      'edge sessions taken back from the data directory',
    );
  } catch (err) {
    const e = toGatewayError(err);
    logger.error({ path, code: e.code, err: e }, e.message);
  }
}

/** The last edge stopping: its sessions go to the data directory for the next start. */
function saveSessions(core: EdgeCore, path: string, logger: Logger): void {
  const sessions = [...core.table.values()].filter((s) => !s.ended);
  if (sessions.length === 0) return;
  try {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    const n = writeSessionFile(path, sessions, core.now());
    core.keptElsewhere(sessions);
    logger.info({ path, sessions: n }, 'edge sessions written to the data directory');
  } catch (err) {
    logger.error({ path, err }, 'edge sessions could not be written; they end here');
  }
}

/**
 * The server side of the benchmark: a real node (server/node.ts startNode,
 * every role, the in-process bus) started inside this process, so that this
 * process is the node's primary and its edge runs in N worker processes
 * (cluster.fork of server/edge-worker.ts `--internal-edge-worker i`) sharing the device
 * port, each reaching the primary's bus over IPC — the same composition as
 * `mmgw start --edge-workers N`. The benchmark injects events by publishing
 * DeviceMessage 'event' on Subjects.device(imei) on that bus, exactly as a
 * transport role in the primary does.
 */
import cluster from 'node:cluster';
import { encodeFrame } from '../../../device-protocol/codec.ts';
import { Kind, type Value } from '../../../device-protocol/messages.ts';
import { type DeviceMessage, Subjects } from '../../../server/bus/bus.ts';
import { loadConfig } from '../../../server/config.ts';
import { type RunningNode, startNode } from '../../../server/node.ts';
import { cpuSeconds } from './proc-stats.ts';

export interface BenchServerOptions {
  engine: 'uws' | 'portable';
  dataDir: string;
  edgeWorkers: number;
  heartbeatMs: number;
  resumeWindowMs: number;
}

export interface BenchServer {
  port: number;
  adminPort: number;
  edgePids(): number[];
  /** CPU seconds used so far by the edge processes and by this (primary) process. */
  cpu(): { edges: number; primary: number };
  publishEvent(imei: string, name: string, body: Value): void;
  /** Size of one Event frame with this name and body (what a device receives, before WebSocket framing). */
  eventFrameBytes(name: string, body: Value): number;
  flush(): Promise<void>;
  /**
   * Waits until the edge processes have gone quiet (CPU below a quarter of a
   * core for a second), bounded: after a storm of RSTs that is when they have
   * detached every session. Resolves with the ms waited.
   */
  waitQuiet(timeoutMs: number): Promise<number>;
  /** Selected series of the node's aggregated /metrics (primary + every edge worker). */
  metrics(): Promise<Record<string, number>>;
  stop(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function startBenchServer(o: BenchServerOptions): Promise<BenchServer> {
  const config = loadConfig({
    env: {},
    flags: {
      data: o.dataDir,
      host: '127.0.0.1',
      port: 0,
      adminPort: 0,
      roles: ['all'],
      engine: o.engine,
      edgeWorkers: o.edgeWorkers,
      logLevel: process.env.MMGW_LOG_LEVEL ?? 'warn',
    },
  });
  config.edge.heartbeatMs = o.heartbeatMs;
  config.edge.resumeWindowMs = o.resumeWindowMs;
  // Each load generator puts up to 18,000 devices behind one source address and connects
  // hundreds at once, as fast as the edge takes them: a NAT far beyond what the per-address
  // limits before authentication are sized for (server/edge/limits.ts). Lifted, so that the
  // benchmark measures the edge, not those limits.
  config.edge.limits = {
    ...config.edge.limits,
    maxUnauthenticatedPerAddress: 1_000_000,
    preAuthFramesPerSecondPerAddress: 1_000_000,
  };
  // Every role in this process, as the figures in RESULTS.md were taken (the edge is what is measured).
  config.supervise = false;
  const before = new Set(Object.keys(cluster.workers ?? {}));
  const node: RunningNode = await startNode(config);
  const workers = () =>
    Object.entries(cluster.workers ?? {})
      .filter(([id, w]) => !before.has(id) && w !== undefined && !w.isDead())
      .map(([, w]) => w!.process.pid ?? 0);
  const edgePids = () => (o.edgeWorkers > 1 ? workers() : [process.pid]);
  const cpu = () => ({
    edges: edgePids().reduce((s, pid) => s + cpuSeconds(pid), 0),
    primary: cpuSeconds(process.pid),
  });
  return {
    port: node.devicePort ?? 0,
    adminPort: node.adminPort,
    edgePids,
    cpu,
    publishEvent(imei, name, body) {
      const msg: DeviceMessage = { type: 'event', name, body };
      node.bus.publish(Subjects.device(imei), msg);
    },
    eventFrameBytes: (name, body) => encodeFrame({ kind: Kind.Event, seq: 100_000, name, body }).length,
    flush: () => node.bus.flush(),
    async waitQuiet(timeoutMs) {
      const t0 = Date.now();
      // One edge runs in this process, which never goes quiet: give it a fixed moment instead.
      if (o.edgeWorkers <= 1) {
        await sleep(Math.min(timeoutMs, 1500));
        return Date.now() - t0;
      }
      let last = cpu().edges;
      let quietSince = 0;
      while (Date.now() - t0 < timeoutMs) {
        await sleep(250);
        const now = cpu().edges;
        // Below a quarter of a core over all edges: idle apart from heartbeats and timers.
        if (now - last < 0.0625) {
          if (quietSince === 0) quietSince = Date.now();
          else if (Date.now() - quietSince >= 1000) break;
        } else quietSince = 0;
        last = now;
      }
      return Date.now() - t0;
    },
    async metrics() {
      const out: Record<string, number> = {};
      try {
        const res = await fetch(`http://127.0.0.1:${node.adminPort}/metrics`, {
          signal: AbortSignal.timeout(10_000),
        });
        const text = await res.text();
        for (const line of text.split('\n')) {
          const m = /^(mmgw_edge_[a-z_]+)(\{[^}]*\})? ([0-9.e+-]+)$/.exec(line);
          if (!m) continue;
          const code = /code="([^"]*)"/.exec(m[2] ?? '');
          const key = code ? `${m[1]}{${code[1]}}` : m[1]!;
          out[key] = (out[key] ?? 0) + Number(m[3]);
        }
      } catch {
        // metrics are a cross-check only
      }
      return out;
    },
    async stop() {
      await node.close();
    },
  };
}

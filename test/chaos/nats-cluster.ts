/**
 * A clustered JetStream NATS of n servers on loopback for the chaos suite.
 * Each server keeps its ports and store directory for the life of the
 * cluster, so that a killed server comes back as the same cluster member
 * (its routes, its JetStream state) and clients' URL lists stay valid.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { eventually } from '../../testing/index.ts';
import { findNatsServer, freePort } from '../harness/nats.ts';
import type { ProcessSet } from './processes.ts';

export interface NatsMember {
  readonly name: string;
  readonly port: number;
  readonly url: string;
  /** Running now (not killed, possibly stopped by SIGSTOP). */
  running(): boolean;
  pid(): number | undefined;
  kill(signal?: NodeJS.Signals): Promise<void>;
  start(): Promise<void>;
}

export interface NatsCluster {
  readonly members: NatsMember[];
  /** nats://a,nats://b,nats://c for `--bus`. */
  readonly busUrl: string;
  /** Up with a JetStream meta leader on every running member. */
  waitHealthy(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Starts the cluster; a server that exits while starting (a port taken between
 * freePort and its bind by another process of the run) makes it start again on
 * fresh ports and a fresh store, at most 3 times.
 */
export async function startNatsCluster(dir: string, processes: ProcessSet, size = 3): Promise<NatsCluster> {
  for (let attempt = 1; ; attempt++) {
    const at = attempt === 1 ? dir : join(dir, `attempt-${attempt}`);
    try {
      return await startNatsClusterOnce(at, processes, size);
    } catch (err) {
      if (attempt >= 3 || !(err instanceof ExitedWhileStarting)) throw err;
    }
  }
}

class ExitedWhileStarting extends Error {}

async function startNatsClusterOnce(dir: string, processes: ProcessSet, size: number): Promise<NatsCluster> {
  const binary = findNatsServer();
  const ports = await Promise.all(
    Array.from({ length: size }, async () => ({
      client: await freePort(),
      route: await freePort(),
      http: await freePort(),
    })),
  );
  const members: NatsMember[] = ports.map((p, i) => {
    const name = `nats-${i + 1}`;
    const store = join(dir, name);
    mkdirSync(store, { recursive: true });
    const routes = ports
      .filter((_, j) => j !== i)
      .map((o) => `nats-route://127.0.0.1:${o.route}`)
      .join(', ');
    const conf = join(dir, `${name}.conf`);
    // max_payload as docker/nats.conf: image sources travel inside one bus message.
    writeFileSync(
      conf,
      [
        `server_name: ${name}`,
        `listen: 127.0.0.1:${p.client}`,
        `http: 127.0.0.1:${p.http}`,
        'max_payload: 33554432',
        `jetstream { store_dir: "${store}", max_memory_store: 268435456, max_file_store: 1073741824 }`,
        `cluster { name: mmgw-chaos, listen: 127.0.0.1:${p.route}, routes: [${routes}] }`,
        '',
      ].join('\n'),
    );
    let child: ChildProcess | undefined;
    const member: NatsMember = {
      name,
      port: p.client,
      url: `nats://127.0.0.1:${p.client}`,
      running: () => child !== undefined && child.exitCode === null && child.signalCode === null,
      pid: () => child?.pid,
      async kill(signal: NodeJS.Signals = 'SIGKILL') {
        if (child) await processes.kill(child, signal);
        child = undefined;
      },
      async start() {
        child = processes.spawn(name, binary, ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
        const self = child;
        // What it said last, for the error when it exits (nats-server logs to stderr).
        let said = '';
        self.stderr?.setEncoding('utf8');
        self.stderr?.on('data', (chunk: string) => (said = (said + chunk).slice(-600)));
        await eventually(
          `${name} listening`,
          async () => {
            if (self.exitCode !== null)
              throw new ExitedWhileStarting(`${name} exited with ${self.exitCode}: ${said.trim()}`);
            const res = await fetch(`http://127.0.0.1:${p.http}/varz`).catch(() => undefined);
            await res?.arrayBuffer();
            return res?.ok === true;
          },
          { timeoutMs: 20_000, intervalMs: 100 },
        );
      },
    };
    return member;
  });
  const cluster: NatsCluster = {
    members,
    busUrl: members.map((m) => m.url).join(','),
    async waitHealthy(timeoutMs = 60_000) {
      await eventually(
        'NATS JetStream healthy on every running server',
        async () => {
          for (const [i, m] of members.entries()) {
            if (!m.running()) continue;
            const res = await fetch(`http://127.0.0.1:${ports[i]!.http}/healthz`).catch(() => undefined);
            await res?.arrayBuffer();
            if (res?.status !== 200) return false;
          }
          return true;
        },
        { timeoutMs, intervalMs: 200 },
      );
    },
    async stop() {
      for (const m of members) await m.kill('SIGTERM');
    },
  };
  try {
    await Promise.all(members.map((m) => m.start()));
  } catch (err) {
    await cluster.stop();
    // eventually() wraps the last error as its cause.
    const cause = (err as Error).cause;
    throw cause instanceof ExitedWhileStarting ? cause : err;
  }
  await cluster.waitHealthy();
  return cluster;
}

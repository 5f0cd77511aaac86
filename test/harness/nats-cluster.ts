/**
 * Three real nats-servers in one cluster with JetStream, on free loopback
 * ports, for one test file: what cluster mode runs on (3 replicas of the
 * alarm history). Each server can be killed and started again on its ports
 * and store. Every server is killed by pid when the test process exits.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { eventually } from '../../testing/index.ts';
import { findNatsServer, freePort } from './nats.ts';
import { waitForServer } from './server-probe.ts';

export interface NatsClusterServer {
  name: string;
  port: number;
  url: string;
  pid(): number | undefined;
  /** SIGKILL and wait for the exit. */
  kill(): Promise<void>;
  /** Starts it again (same ports, same store). */
  start(): Promise<void>;
}

export interface NatsCluster {
  servers: NatsClusterServer[];
  /** Every client URL, comma-separated (the --bus value). */
  url: string;
  stop(): Promise<void>;
}

const live = new Set<ChildProcess>();
let hooked = false;

function exitHook(): void {
  if (hooked) return;
  hooked = true;
  process.on('exit', () => {
    for (const child of live) {
      try {
        if (child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
  });
}

const INFO = {
  verdict: (received: string) => (received.length > 0 ? received.startsWith('INFO') : undefined),
  silenceMs: 1000,
};

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/** Resolves once JetStream answers with a meta leader (streams can be created). */
async function jetStreamReady(url: string): Promise<void> {
  const nc = await connect({ servers: url, timeout: 5000 });
  try {
    await eventually(
      'JetStream ready on the cluster',
      async () => {
        try {
          const reply = await nc.request('$JS.API.INFO', undefined, { timeout: 2000 });
          const info = JSON.parse(new TextDecoder().decode(reply.data)) as { error?: unknown };
          return info.error === undefined;
        } catch {
          return false;
        }
      },
      { timeoutMs: 30_000, intervalMs: 200 },
    );
  } finally {
    await nc.close();
  }
}

export async function startNatsCluster(size = 3): Promise<NatsCluster> {
  exitHook();
  const binary = findNatsServer();
  const dir = mkdtempSync(join(tmpdir(), 'mmgw-nats-cluster-'));
  const ports = await Promise.all(
    Array.from({ length: size }, async () => [await freePort(), await freePort()]),
  );
  const routes = ports.map(([, c]) => `nats-route://127.0.0.1:${c}`).join(', ');
  const servers: NatsClusterServer[] = ports.map(([port, clusterPort], i) => {
    const name = `n${i + 1}`;
    const store = join(dir, name);
    mkdirSync(store, { recursive: true });
    const conf = join(dir, `${name}.conf`);
    writeFileSync(
      conf,
      [
        `server_name: ${name}`,
        `listen: 127.0.0.1:${port}`,
        `jetstream { store_dir: "${store}" }`,
        `cluster { name: mmgw-test, listen: 127.0.0.1:${clusterPort}, routes: [${routes}] }`,
        '',
      ].join('\n'),
    );
    let child: ChildProcess | undefined;
    const server: NatsClusterServer = {
      name,
      port: port ?? 0,
      url: `nats://127.0.0.1:${port}`,
      pid: () => child?.pid,
      async kill() {
        if (!child) return;
        const c = child;
        child = undefined;
        try {
          if (c.pid !== undefined) process.kill(c.pid, 'SIGKILL');
        } catch {
          // gone
        }
        await exited(c);
        live.delete(c);
      },
      async start() {
        const c = spawn(binary, ['-c', conf], { stdio: ['ignore', 'ignore', 'ignore'] });
        child = c;
        live.add(c);
        let dead = false;
        c.once('exit', () => {
          dead = true;
        });
        await waitForServer(`nats-server ${name}`, '127.0.0.1', port ?? 0, INFO, {
          timeoutMs: 15_000,
          intervalMs: 50,
          isDead: () => (dead ? `nats-server ${name} exited` : undefined),
        });
      },
    };
    return server;
  });
  try {
    await Promise.all(servers.map((s) => s.start()));
    await jetStreamReady(servers.map((s) => s.url).join(','));
  } catch (err) {
    await Promise.all(servers.map((s) => s.kill()));
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    servers,
    url: servers.map((s) => s.url).join(','),
    async stop() {
      await Promise.all(servers.map((s) => s.kill()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

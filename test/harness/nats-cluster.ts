/**
 * A real NATS cluster with JetStream for one test file: `size` nats-servers
 * (default 3) on free loopback ports, each with its server_name, cluster
 * routes to the others and a store_dir of its own, as nats-server 2.9 needs.
 * A member can be killed and started again (same ports, same store) mid-test;
 * everything is stopped by pid afterwards, also when the test process exits
 * without cleaning up.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eventually } from '../../testing/index.ts';
import { findNatsServer, freePort, killOnExit } from './nats.ts';
import { waitForServer } from './server-probe.ts';

export interface NatsClusterMember {
  readonly name: string;
  readonly url: string;
  /** The pid of the running process; undefined while killed. */
  pid(): number | undefined;
  /** SIGKILL (default) or another signal; resolves once the process is gone. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts it again with the same ports and store; resolves once it accepts clients. */
  start(): Promise<void>;
}

export interface NatsCluster {
  readonly urls: string[];
  readonly members: NatsClusterMember[];
  /** Resolves once every running member agrees on a JetStream meta leader. */
  jetStreamReady(): Promise<void>;
  stop(): Promise<void>;
}

function gone(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/**
 * Ports are probed free one by one, then bound by the servers: another test may take one in between
 * (a server then exits at start). A start that fails so is tried again on fresh ports, twice at most.
 */
export async function startNatsCluster(options: { size?: number } = {}): Promise<NatsCluster> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startNatsClusterOnce(options);
    } catch (err) {
      if (attempt >= 3) throw err;
    }
  }
}

async function startNatsClusterOnce(options: { size?: number }): Promise<NatsCluster> {
  const size = options.size ?? 3;
  const binary = findNatsServer();
  const dir = mkdtempSync(join(tmpdir(), 'mmgw-nats-cluster-'));
  // Ports are probed free one by one; a clash at bind time shows as a start failure with the server's words.
  const ports: Array<{ client: number; route: number; http: number }> = [];
  for (let i = 0; i < size; i++)
    ports.push({ client: await freePort(), route: await freePort(), http: await freePort() });
  const routes = ports.map((p) => `nats-route://127.0.0.1:${p.route}`).join(', ');
  const members = ports.map((p, i) => {
    const name = `n${i + 1}`;
    const config = join(dir, `${name}.conf`);
    writeFileSync(
      config,
      [
        `server_name: ${name}`,
        `listen: 127.0.0.1:${p.client}`,
        `http: 127.0.0.1:${p.http}`,
        `jetstream { store_dir: "${join(dir, name)}" }`,
        `cluster { name: mmgw, listen: 127.0.0.1:${p.route}, routes: [${routes}] }`,
        '',
      ].join('\n'),
    );
    let child: ChildProcess | undefined;
    let untrack = (): void => {};
    let stderr = '';
    const member: NatsClusterMember & { httpPort: number } = {
      name,
      url: `nats://127.0.0.1:${p.client}`,
      httpPort: p.http,
      pid: () => child?.pid,
      async kill(signal = 'SIGKILL') {
        const c = child;
        if (!c || c.pid === undefined) return;
        try {
          process.kill(c.pid, signal);
        } catch {
          // already gone
        }
        await gone(c);
        untrack();
        child = undefined;
      },
      async start() {
        if (child) return;
        stderr = '';
        const c = spawn(binary, ['-c', config], { stdio: ['ignore', 'ignore', 'pipe'] });
        child = c;
        untrack = killOnExit(c);
        c.stderr?.setEncoding('utf8');
        c.stderr?.on('data', (s: string) => {
          if (stderr.length < 8192) stderr += s;
        });
        let exited = false;
        c.once('exit', () => {
          exited = true;
        });
        await waitForServer(
          `nats-server ${name}`,
          '127.0.0.1',
          p.client,
          { verdict: (r) => (r.length > 0 ? r.startsWith('INFO') : undefined), silenceMs: 1000 },
          {
            timeoutMs: 15_000,
            intervalMs: 50,
            isDead: () => (exited ? `nats-server ${name} exited: ${stderr.trim()}` : undefined),
          },
        );
      },
    };
    return member;
  });
  const stop = async (): Promise<void> => {
    await Promise.all(members.map((m) => m.kill('SIGTERM')));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await Promise.all(members.map((m) => m.start()));
  } catch (err) {
    await stop();
    throw err;
  }
  const cluster: NatsCluster = {
    urls: members.map((m) => m.url),
    members,
    async jetStreamReady() {
      await eventually(
        'a JetStream meta leader every running server knows',
        async () => {
          const leaders = new Set<string>();
          for (const m of members) {
            if (m.pid() === undefined) continue;
            const res = await fetch(`http://127.0.0.1:${m.httpPort}/jsz`);
            const jsz = (await res.json()) as { meta_cluster?: { leader?: string } };
            const leader = jsz.meta_cluster?.leader;
            if (!leader) return false;
            leaders.add(leader);
          }
          return leaders.size === 1;
        },
        { timeoutMs: 30_000, intervalMs: 100 },
      );
    },
    stop,
  };
  try {
    await cluster.jetStreamReady();
  } catch (err) {
    await stop();
    throw err;
  }
  return cluster;
}

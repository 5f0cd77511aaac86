/**
 * The chaos suite's deployments on loopback, each mmgw role as its own
 * process (`mmgw start --role X --bus nats://…`, as docker/compose.cluster.yml
 * runs them): 3 clustered JetStream nats-servers, 2 admin, 2 transport, 2 edge
 * and 1 transcoder nodes; or one single-node `mmgw start` (every role, inproc
 * bus). Every node keeps its node id, data directory and ports across
 * restarts, as a container with a volume and a fixed port mapping does.
 *
 * The cluster's nodes run unsupervised (--no-supervise: the role in the one
 * process, so that a signal reaches the role itself); the single node as
 * `mmgw start` does by default, its transport and transcoder in child processes.
 *
 * Devices are imported (with their secrets) into the data directory of each
 * admin node before it starts: the admin nodes do not share a registry yet,
 * and one that does not know a device refuses its Hello.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { eventually } from '../../testing/index.ts';
import { type Gateway, runMmgw, startGateway } from '../harness/gateway.ts';
import { freePort } from '../harness/nats.ts';
import { type NatsCluster, startNatsCluster } from './nats-cluster.ts';
import type { ProcessSet } from './processes.ts';

export type NodeKind = 'admin' | 'transport' | 'edge' | 'transcoder' | 'all';

export interface Device {
  imei: string;
  secret: string;
}

export class MmgwNode {
  gw: Gateway | undefined;
  /** The checkout the node's next start runs (GatewayOptions.root): a release before, until upgraded. */
  root: string | undefined;

  constructor(
    readonly name: string,
    readonly kind: NodeKind,
    readonly dataDir: string,
    readonly devicePort: number,
    readonly adminPort: number,
    private readonly args: string[],
    private readonly env: Record<string, string>,
    private readonly processes: ProcessSet,
    /** As `mmgw start` without --no-supervise: the transport and the transcoder in child processes. */
    private readonly supervise = false,
  ) {
    mkdirSync(dataDir, { recursive: true });
  }

  get url(): string {
    return `ws://127.0.0.1:${this.devicePort}`;
  }

  pid(): number | undefined {
    return this.gw?.pid;
  }

  running(): boolean {
    const p = this.gw?.process;
    return p !== undefined && p.exitCode === null && p.signalCode === null;
  }

  async start(): Promise<void> {
    this.gw = await startGateway({
      dataDir: this.dataDir,
      env: this.env,
      timeoutMs: 90_000,
      supervise: this.supervise,
      ...(this.root === undefined ? {} : { root: this.root }),
      // After the harness's own --port 0 / --admin-port 0: the last one wins.
      args: [
        '--port',
        String(this.devicePort),
        '--admin-port',
        String(this.adminPort),
        '--node-id',
        this.name,
        ...this.args,
      ],
    });
    this.processes.adopt(this.name, this.gw.process);
  }

  /** Sends `signal` and waits for the exit (SIGCONT first when frozen; SIGKILL after 30 s). */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const gw = this.gw;
    if (!gw) return;
    this.processes.thaw(gw.pid);
    await gw.stop(signal);
  }

  /** Waits until /readyz answers 200 (an edge: a transport is known). */
  async waitReady(timeoutMs = 60_000): Promise<void> {
    // What /readyz last said: a node that never gets ready names what it waits for in the report.
    let said = 'no answer';
    await eventually(
      `${this.name} ready`,
      async () => {
        const res = await fetch(`http://127.0.0.1:${this.adminPort}/readyz`).catch(() => undefined);
        said = res ? `${res.status} ${(await res.text()).slice(0, 500)}` : 'no answer';
        return res?.status === 200;
      },
      { timeoutMs, intervalMs: 200 },
    ).catch((err: unknown) => {
      throw new Error(`${err instanceof Error ? err.message : String(err)}; /readyz said: ${said}`);
    });
  }
}

export interface Deployment {
  nodes: MmgwNode[];
  nats?: NatsCluster;
  /** Every device endpoint (edges). */
  edgeUrls(): string[];
  stop(): Promise<void>;
}

/** One secret for every node: tokens of one edge are valid on the other, sealed passwords open everywhere. */
export function clusterEnv(): Record<string, string> {
  return {
    MMGW_JWT_SECRET: randomBytes(32).toString('base64url'),
    MMGW_CREDENTIALS_KEY: randomBytes(32).toString('base64'),
    MMGW_LOG_LEVEL: process.env.MMGW_LOG_LEVEL ?? 'warn',
  };
}

export async function importDevices(dataDir: string, devices: Device[], root?: string): Promise<void> {
  mkdirSync(dataDir, { recursive: true });
  const csv = join(dataDir, 'chaos-devices.csv');
  writeFileSync(
    csv,
    ['imei,operator,secret', ...devices.map((d) => `${d.imei},chaos,${d.secret}`)].join('\n'),
  );
  const out = await runMmgw(['device', 'import', csv, '--data', dataDir, '--json'], root ? { root } : {});
  if (out.code !== 0) throw new Error(`device import into ${dataDir}: ${out.stdout}${out.stderr}`);
}

async function ports(): Promise<[number, number]> {
  return [await freePort(), await freePort()];
}

export async function startCluster(
  dir: string,
  processes: ProcessSet,
  devices: Device[],
  onStep: (what: string) => void = () => {},
  /** Every node runs this checkout (a release before) until a rolling upgrade moves it on. */
  root?: string,
): Promise<Deployment> {
  const env = clusterEnv();
  const nodes: MmgwNode[] = [];
  let nats: NatsCluster | undefined;
  const deployment: Deployment = {
    nodes,
    edgeUrls: () => nodes.filter((n) => n.kind === 'edge').map((n) => n.url),
    async stop() {
      for (const n of [...nodes].reverse()) await n.stop().catch(() => undefined);
      await nats?.stop();
    },
  };
  try {
    onStep('NATS cluster');
    nats = await startNatsCluster(join(dir, 'nats'), processes);
    deployment.nats = nats;
    const bus = nats.busUrl;
    const layout: Array<[string, NodeKind]> = [
      ['admin-1', 'admin'],
      ['admin-2', 'admin'],
      ['transport-1', 'transport'],
      ['transport-2', 'transport'],
      ['transcoder-1', 'transcoder'],
      ['edge-1', 'edge'],
      ['edge-2', 'edge'],
    ];
    for (const [name, kind] of layout) {
      const [devicePort, adminPort] = await ports();
      const node = new MmgwNode(
        name,
        kind,
        join(dir, name),
        devicePort,
        adminPort,
        ['--role', kind, '--bus', bus],
        env,
        processes,
      );
      node.root = root;
      if (kind === 'admin') await importDevices(node.dataDir, devices, root);
      nodes.push(node);
    }
    // Dependency order (admin, transport, transcoder, edge) as the compose file's start order.
    for (const n of nodes) {
      onStep(n.name);
      await n.start();
    }
    for (const n of nodes) await n.waitReady();
    return deployment;
  } catch (err) {
    await deployment.stop();
    throw err;
  }
}

export async function startSingleNode(
  dir: string,
  processes: ProcessSet,
  devices: Device[],
): Promise<Deployment> {
  const [devicePort, adminPort] = await ports();
  const node = new MmgwNode(
    'single-1',
    'all',
    join(dir, 'single-1'),
    devicePort,
    adminPort,
    [],
    clusterEnv(),
    processes,
    // As `mmgw start` runs by default: the transport and the transcoder in child processes.
    true,
  );
  await importDevices(node.dataDir, devices);
  await node.start();
  await node.waitReady();
  return {
    nodes: [node],
    edgeUrls: () => [node.url],
    stop: () => node.stop(),
  };
}

export function writeJson(path: string, value: unknown): void {
  writeFileSync(path, JSON.stringify(value, null, 2));
}

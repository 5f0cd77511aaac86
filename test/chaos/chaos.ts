/**
 * The chaos run: a deployment (cluster.ts), a handset fleet with traffic
 * (fleet-worker.ts), and faults one at a time. Each fault: a baseline of
 * traffic, the fault, the recovery a restart policy would do (a killed or
 * stopped process is started again; a frozen one continued), observation
 * until every handset works again or the window ends, then the traffic
 * stops and the fleet has `drainMs` to see what was accepted. When handsets
 * still do not work at the end of the window, a human acts: first "restart
 * the app" on every handset, then restart every mmgw node, and the report
 * says so.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { imeiWithCheckDigit } from '../../server/store/imei.ts';
import { type DovecotServer, startDovecot } from '../harness/dovecot.ts';
import { type ProsodyServer, startProsody } from '../harness/prosody.ts';
import { type SmtpPeer, startSmtpPeer } from '../harness/smtp-peer.ts';
import { DELIVERY_MS, type FaultFigures, healthy, judge, recovery } from './analysis.ts';
import { type Deployment, type Device, type MmgwNode, startCluster, startSingleNode } from './cluster.ts';
import { ProcessSet } from './processes.ts';
import { Fleet, type FleetSetup, type HandsetSpec, type ItemTable } from './records.ts';

export interface ChaosOptions {
  handsets: number;
  /** Handset processes. */
  workers: number;
  chatEveryMs: number;
  mailEveryMs: number;
  /** The handsets' application (FleetSetup.app); default 'sdk'. */
  app?: 'sdk' | 'manual';
  baselineMs: number;
  /** How long a SIGSTOP lasts. */
  freezeMs: number;
  /** How long every NATS server stays down. */
  natsOutageMs: number;
  /** The longest wait for every handset to work again after the recovery action. */
  observeMs: number;
  drainMs: number;
  /** Names (or parts of names) of the faults to run; empty: all. */
  only: string[];
  /**
   * A checkout of the release before (node_modules and dist/ built): the cluster starts on it
   * and the only fault is the rolling upgrade to this tree, node by node, under traffic.
   */
  from?: string;
  log(line: string): void;
}

export interface FaultResult {
  name: string;
  figures: FaultFigures;
  humanAction: string;
  /** Set when the fault's own recovery action failed (a node did not come back ready): the fault was not carried out whole. */
  note?: string;
}

interface Ctx {
  deployment: Deployment;
  processes: ProcessSet;
  o: ChaosOptions;
  /** A fault made of steps says when each begins (FaultWindow.steps). */
  step(): void;
}

interface Fault {
  name: string;
  /** Nothing can work until the fault's end (every NATS server down): recovery times count from there. */
  timedFromEnd?: boolean;
  /** Injects the fault and does the automatic recovery; resolves when the recovery action is done. */
  run(ctx: Ctx): Promise<void>;
}

const node = (ctx: Ctx, name: string): MmgwNode => {
  const n = ctx.deployment.nodes.find((x) => x.name === name);
  if (!n) throw new Error(`no node ${name}`);
  return n;
};

/** What a restart policy does: start the node again once it has exited. */
async function restartAfter(n: MmgwNode, signal: NodeJS.Signals): Promise<void> {
  await n.stop(signal);
  await n.start();
}

function nodeFaults(name: string): Fault[] {
  return [
    { name: `kill -9 ${name}`, run: (ctx) => restartAfter(node(ctx, name), 'SIGKILL') },
    { name: `SIGTERM ${name}`, run: (ctx) => restartAfter(node(ctx, name), 'SIGTERM') },
    {
      name: `SIGSTOP ${name}`,
      async run(ctx) {
        const n = node(ctx, name);
        ctx.processes.freeze(n.pid());
        await sleep(ctx.o.freezeMs);
        ctx.processes.thaw(n.pid());
      },
    },
  ];
}

export const CLUSTER_FAULTS: Fault[] = [
  ...['admin-1', 'transport-1', 'edge-1', 'transcoder-1'].flatMap(nodeFaults),
  {
    name: 'kill -9 one NATS server',
    async run(ctx) {
      const m = ctx.deployment.nats!.members[1]!;
      await m.kill('SIGKILL');
      // Back after a while, as a restart policy with a delay would.
      await sleep(10_000);
      await m.start();
    },
  },
  {
    name: 'all NATS servers down',
    timedFromEnd: true,
    async run(ctx) {
      const members = ctx.deployment.nats!.members;
      await Promise.all(members.map((m) => m.kill('SIGKILL')));
      await sleep(ctx.o.natsOutageMs);
      await Promise.all(members.map((m) => m.start()));
    },
  },
  {
    name: 'rolling restart of every mmgw node',
    async run(ctx) {
      for (const n of ctx.deployment.nodes) {
        ctx.step();
        await restartAfter(n, 'SIGTERM');
        await n.waitReady();
      }
    },
  },
];

/** With ChaosOptions.from: every node, one at a time, stopped with SIGTERM and started on this tree. */
export const UPGRADE_FAULT: Fault = {
  name: 'rolling upgrade of every mmgw node from the release before',
  async run(ctx) {
    for (const n of ctx.deployment.nodes) {
      ctx.step();
      n.root = undefined;
      await restartAfter(n, 'SIGTERM');
      await n.waitReady();
    }
  },
};

export const SINGLE_NODE_FAULT: Fault = {
  name: 'single-node mmgw start: SIGTERM + start',
  run: (ctx) => restartAfter(ctx.deployment.nodes[0]!, 'SIGTERM'),
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The last warnings and errors of every node, for a fault nothing mended. */
function logTails(ctx: Ctx): void {
  for (const n of ctx.deployment.nodes) {
    const lines = [...(n.gw?.stderr ?? []), ...(n.gw?.stdout ?? [])].filter((l) => l.trim()).slice(-8);
    for (const line of lines) ctx.o.log(`    ${n.name}: ${line.slice(0, 400)}`);
  }
}

function devicesFor(n: number): Device[] {
  const seed = randomBytes(2).readUInt16BE(0) % 1000;
  return Array.from({ length: n }, (_, i) => ({
    imei: imeiWithCheckDigit(`35${String(seed).padStart(3, '0')}${String(i).padStart(9, '0')}`),
    secret: randomBytes(18).toString('base64url'),
  }));
}

interface Peers {
  dovecot: DovecotServer;
  smtp: SmtpPeer;
  prosody: ProsodyServer;
}

const user = (i: number) => `u${i}`;
const password = (i: number) => `pw-${i}-chaos`;

async function startPeers(n: number): Promise<Peers> {
  const mailUsers = Array.from({ length: n }, (_, i) => ({
    user: `${user(i)}@example.test`,
    password: password(i),
  }));
  const dovecot = await startDovecot({ users: mailUsers });
  const smtp = await startSmtpPeer({ dovecot, starttls: false });
  const prosody = await startProsody({
    domain: 'example.test',
    users: Array.from({ length: n }, (_, i) => ({ user: user(i), password: password(i) })),
  });
  return { dovecot, smtp, prosody };
}

function fleetSetup(o: ChaosOptions, peers: Peers, devices: Device[], urls: string[]): FleetSetup {
  const n = devices.length;
  const handsets: HandsetSpec[] = devices.map((d, i) => {
    const peer = (i + 1) % n;
    return {
      index: i,
      imei: d.imei,
      secret: d.secret,
      // Half the fleet starts at each edge; the SDK moves to the other when its edge fails.
      urls: [...urls.slice(i % urls.length), ...urls.slice(0, i % urls.length)],
      localAddress: `127.0.${1 + Math.floor(i / 250)}.${1 + (i % 250)}`,
      mailUser: `${user(i)}@example.test`,
      jid: peers.prosody.jid(user(i)),
      password: password(i),
      peer,
      peerMail: `${user(peer)}@example.test`,
      peerJid: peers.prosody.jid(user(peer)),
    };
  });
  return {
    handsets,
    imap: { host: peers.dovecot.host, port: peers.dovecot.imapPort },
    smtp: { host: peers.smtp.host, port: peers.smtp.port },
    xmpp: { host: peers.prosody.host, port: peers.prosody.c2sPort },
    chatEveryMs: o.chatEveryMs,
    mailEveryMs: o.mailEveryMs,
    app: o.app ?? 'sdk',
  };
}

/**
 * Waits until every handset works again; resolves with that moment (the end of the fault's window),
 * or undefined after timeoutMs. "Works" is checked twice: at once by the last resolved probes
 * (healthy), then, once every item sent until then has resolved, by the judge's own rule (recovery):
 * an item still under way at the first check may yet turn out late, and would leave that handset
 * unrecovered in a window that ended at the first check.
 */
async function everyHandsetWorks(
  fleet: Fleet,
  n: number,
  t0: number,
  since: number,
  timeoutMs: number,
): Promise<number | undefined> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    const now = Date.now();
    let all = true;
    for (let h = 0; h < n && all; h++) all = healthy(fleet.table, h, since, now);
    if (all) {
      await sleep(DELIVERY_MS + 250);
      const later = Date.now();
      let judged = true;
      for (let h = 0; h < n && judged; h++) {
        const r = recovery(fleet.table, h, t0, now, later);
        judged = r === undefined || r.ms !== undefined;
      }
      if (judged) return now;
      continue;
    }
    await sleep(500);
  }
  return undefined;
}

async function runFault(ctx: Ctx, fleet: Fleet, fault: Fault): Promise<FaultResult> {
  const { o } = ctx;
  const n = o.handsets;
  const from = Date.now();
  await fleet.traffic(true);
  await sleep(o.baselineMs);
  const t0 = Date.now();
  o.log(`  fault: ${fault.name}`);
  let note: string | undefined;
  const steps: number[] = [];
  try {
    await fault.run({ ...ctx, step: () => steps.push(Date.now()) });
  } catch (err) {
    note = `recovery action failed: ${String((err as Error).message ?? err).split('\n')[0]}`;
    o.log(`  ${note}`);
  }
  const recovered = Date.now();
  let humanAction = 'none';
  const back = await everyHandsetWorks(fleet, n, t0, recovered, o.observeMs);
  const to = back ?? Date.now();
  if (back === undefined) {
    humanAction = 'restart the app on every handset';
    o.log(`  not every handset works after ${o.observeMs} ms: ${humanAction}`);
    logTails(ctx);
    await fleet.reopen();
    // Shorter windows after a human action: it either helped at once or it did not.
    const again = Math.min(o.observeMs, 30_000);
    let works = (await everyHandsetWorks(fleet, n, t0, Date.now(), again)) !== undefined;
    if (!works) {
      humanAction += '; then restart every mmgw node';
      o.log('  still not: restarting every mmgw node');
      for (const node of ctx.deployment.nodes) await restartAfter(node, 'SIGTERM').catch(() => undefined);
      await fleet.reopen();
      works = (await everyHandsetWorks(fleet, n, t0, Date.now(), again)) !== undefined;
      if (!works) {
        humanAction += '; still not working';
        logTails(ctx);
      }
    }
  }
  await fleet.traffic(false);
  await sleep(o.drainMs);
  const figures = judge(fleet.table, {
    from,
    t0,
    to,
    deadline: Date.now(),
    handsets: n,
    ...(fault.timedFromEnd ? { timesFrom: recovered } : {}),
    ...(steps.length > 1 ? { steps } : {}),
  });
  o.log(
    `  affected ${figures.affected}/${n}, p99 ${figures.p99Ms ?? '-'} ms, unrecovered ${figures.unrecovered}, ` +
      `lost ${figures.lost}, doubled ${figures.doubled}, out of order ${figures.outOfOrder}, human action: ${humanAction}`,
  );
  keepItems(fault.name, fleet.table, t0);
  if (figures.lostIds.length > 0) o.log(`  lost: ${figures.lostIds.join(' ')}`);
  if (figures.doubledIds.length > 0) o.log(`  doubled: ${figures.doubledIds.join(' ')}`);
  return { name: fault.name, figures, humanAction, ...(note ? { note } : {}) };
}

function selected(o: ChaosOptions, faults: Fault[]): Fault[] {
  if (o.only.length === 0) return faults;
  return faults.filter((f) => o.only.some((s) => f.name.toLowerCase().includes(s.toLowerCase())));
}

/** Runs the cluster faults, then the single-node one; stops and removes everything it started. */
export async function runChaos(o: ChaosOptions): Promise<FaultResult[]> {
  const dir = mkdtempSync(join(tmpdir(), 'mmgw-chaos-'));
  const processes = new ProcessSet();
  const results: FaultResult[] = [];
  let peers: Peers | undefined;
  let deployment: Deployment | undefined;
  let fleet: Fleet | undefined;
  try {
    o.log(`peers: Dovecot, SMTP, Prosody for ${o.handsets} handsets`);
    peers = await startPeers(o.handsets);
    const clusterFaults = o.from === undefined ? selected(o, CLUSTER_FAULTS) : [UPGRADE_FAULT];
    if (clusterFaults.length > 0) {
      const devices = devicesFor(o.handsets);
      const onStep = (s: string) => o.log(`start ${s}${o.from === undefined ? '' : ` (${o.from})`}`);
      deployment = await startCluster(join(dir, 'cluster'), processes, devices, onStep, o.from);
      o.log('fleet: connecting, adding accounts');
      fleet = await Fleet.start(processes, fleetSetup(o, peers, devices, deployment.edgeUrls()), o.workers);
      const ctx: Ctx = { deployment, processes, o, step: () => {} };
      for (const fault of clusterFaults) results.push(await runFault(ctx, fleet, fault));
      await fleet.stop();
      fleet = undefined;
      await deployment.stop();
      deployment = undefined;
    }
    if (o.from === undefined && selected(o, [SINGLE_NODE_FAULT]).length > 0) {
      const devices = devicesFor(o.handsets);
      o.log('start single node');
      deployment = await startSingleNode(join(dir, 'single'), processes, devices);
      fleet = await Fleet.start(processes, fleetSetup(o, peers, devices, deployment.edgeUrls()), o.workers);
      results.push(await runFault({ deployment, processes, o, step: () => {} }, fleet, SINGLE_NODE_FAULT));
    }
    return results;
  } finally {
    await fleet?.stop().catch(() => undefined);
    await deployment?.stop().catch(() => undefined);
    await processes.stopAll();
    await peers?.prosody.stop().catch(() => undefined);
    await peers?.smtp.stop().catch(() => undefined);
    await peers?.dovecot.stop({ removeDir: true }).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * With MMGW_TEST_LOG_DIR (the gateways' logs go there too): the items of the
 * fault's window, what was tried and seen when, for a look at what failed.
 */
function keepItems(name: string, table: ItemTable, from: number): void {
  const dir = process.env.MMGW_TEST_LOG_DIR;
  if (!dir) return;
  const items = [...table.items.values()].filter((i) => i.firstAttempt >= from - 10_000);
  const file = join(dir, `items-${name.replace(/[^\w-]+/g, '_')}.json`);
  writeFileSync(file, JSON.stringify({ fault: name, faultAt: from, items }, null, 1));
}

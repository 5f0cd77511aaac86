/**
 * `npm run bench:edge`: the edge benchmark. See test/bench/README.md.
 *
 * For each engine (uws, portable), in the same run and on the same devices:
 *  1. ramp: open authenticated sessions in steps, measure connect+auth rate
 *     and the edge processes' RSS after each step;
 *  2. events: push events to every connected device through the bus and
 *     count what the devices received and acked;
 *  3. storm: RST every device socket at once, push events into the detached
 *     sessions, reconnect every device with Resume and check that each one
 *     resumed and that every device ends with exactly the events sent to it.
 * Everything is bounded in count and time; the run ends by itself.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LoadFleet, type MergedPhase } from './load-fleet.ts';
import { cpuSeconds, memAvailableBytes, openFds, rssBytes, tcpSockstat } from './proc-stats.ts';
import { provisionDevices } from './provision.ts';
import { renderResults } from './report.ts';
import { type BenchServer, startBenchServer } from './server-harness.ts';

export interface BenchOptions {
  sessions: number;
  engines: Array<'uws' | 'portable'>;
  edgeWorkers: number;
  clients: number;
  steps: number[];
  concurrency: number;
  eventSeconds: number;
  /** Event phases to run, each pushing this many events to one device before moving to the next. */
  eventBursts: number[];
  eventWindow: number;
  stormEvents: number;
  /** Sessions dropped in the storm (at most; default all). */
  stormSessions: number;
  heartbeatMs: number;
  resumeWindowMs: number;
  maxMinutes: number;
  out: string | undefined;
  append: boolean;
  smoke: boolean;
  /** Stop ramping when the machine has less than this available. */
  minFreeBytes: number;
}

const HELP = `npm run bench:edge -- [flags]
  --sessions N        idle sessions per engine (default 20000; target of the issue: 250000)
  --engines LIST      uws,portable (default both, in that order)
  --edge-workers N    edge processes sharing the port (default: one per 15,000 sessions, at least 2)
  --clients N         load-generator processes (default: one per 15,000 sessions, at least 2)
  --steps LIST        ramp steps as fractions of --sessions (default 0.1,0.25,0.5,0.75,1)
  --concurrency N     handshakes in flight at once, over all load processes (default 512)
  --event-seconds S   length of each event-push phase (default 10)
  --event-bursts LIST one event phase per entry: events pushed to one device before the next (default 1,10)
  --event-window N    events pushed but not yet acked, at most (default 150000)
  --storm-events N    events pushed to each device while its socket is down (default 2)
  --storm-sessions N  sessions dropped at once in the storm (default all that are open)
  --heartbeat-ms N    edge.heartbeatMs of the server (default 30000)
  --resume-window-ms N  edge.resumeWindowMs of the server (default 120000)
  --max-minutes N     hard bound on the whole run (default 20, smoke 3)
  --out FILE          write the results there (default test/bench/RESULTS.md; --no-write to skip)
  --append            add this run's report to the end of --out instead of replacing it
  --smoke             1,000 sessions, one step, 2 s of events: a < 30 s self-check`;

function parseArgs(argv: string[]): BenchOptions {
  const flags = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}\n${HELP}`);
    const eq = a.indexOf('=');
    if (eq > 0) flags.set(a.slice(2, eq), a.slice(eq + 1));
    else if (['--smoke', '--no-write', '--append', '--help'].includes(a)) flags.set(a.slice(2), 'true');
    else flags.set(a.slice(2), argv[++i] ?? '');
  }
  if (flags.has('help')) {
    console.log(HELP);
    process.exit(0);
  }
  const known = new Set([
    'sessions',
    'engines',
    'edge-workers',
    'clients',
    'steps',
    'concurrency',
    'event-seconds',
    'event-bursts',
    'event-window',
    'storm-events',
    'storm-sessions',
    'heartbeat-ms',
    'resume-window-ms',
    'max-minutes',
    'out',
    'append',
    'no-write',
    'smoke',
  ]);
  for (const k of flags.keys()) if (!known.has(k)) throw new Error(`unknown flag --${k}\n${HELP}`);
  const num = (k: string, d: number, min = 0) => {
    const v = flags.get(k);
    if (v === undefined) return d;
    const n = Number(v);
    if (!Number.isFinite(n) || n < min) throw new Error(`--${k}: expected a number ≥ ${min}, got ${v}`);
    return n;
  };
  const smoke = flags.has('smoke');
  const sessions = Math.floor(num('sessions', smoke ? 1000 : 20_000, 1));
  const engines = (flags.get('engines') ?? 'uws,portable').split(',').map((e) => e.trim());
  for (const e of engines)
    if (e !== 'uws' && e !== 'portable') throw new Error(`--engines: unknown engine ${e}`);
  const steps = (flags.get('steps') ?? (smoke ? '1' : '0.1,0.25,0.5,0.75,1')).split(',').map(Number);
  const eventBursts = (flags.get('event-bursts') ?? (smoke ? '10' : '1,10')).split(',').map(Number);
  if (eventBursts.some((b) => !Number.isInteger(b) || b < 1))
    throw new Error('--event-bursts: whole numbers ≥ 1');
  if (steps.some((s) => !(s > 0 && s <= 1)) || steps.some((s, i) => i > 0 && s <= steps[i - 1]!)) {
    throw new Error('--steps: increasing fractions in (0, 1]');
  }
  const root = fileURLToPath(new URL('../../..', import.meta.url));
  return {
    sessions,
    engines: engines as BenchOptions['engines'],
    // Smoke: the edge in this process (no worker start-up), to stay under 30 s.
    edgeWorkers: Math.floor(num('edge-workers', smoke ? 1 : Math.max(2, Math.ceil(sessions / 15_000)), 1)),
    clients: Math.floor(num('clients', Math.max(2, Math.ceil(sessions / 15_000)), 1)),
    steps,
    concurrency: Math.floor(num('concurrency', 512, 1)),
    eventSeconds: num('event-seconds', smoke ? 2 : 10, 0),
    eventBursts,
    eventWindow: Math.floor(num('event-window', 150_000, 1)),
    stormEvents: Math.floor(num('storm-events', 2, 0)),
    stormSessions: Math.floor(num('storm-sessions', Number.MAX_SAFE_INTEGER, 1)),
    heartbeatMs: Math.floor(num('heartbeat-ms', 30_000, 1000)),
    resumeWindowMs: Math.floor(num('resume-window-ms', 120_000, 1000)),
    maxMinutes: num('max-minutes', smoke ? 3 : 20, 0.1),
    out: flags.has('no-write') ? undefined : (flags.get('out') ?? join(root, 'test/bench/RESULTS.md')),
    append: flags.has('append'),
    smoke,
    minFreeBytes: 3 * 1024 ** 3,
  };
}

export interface RampStep {
  target: number;
  sessions: number;
  failed: number;
  errors: Record<string, number>;
  wallMs: number;
  ratePerSec: number;
  p50Ms: number;
  p99Ms: number;
  edgeRssBytes: number;
  edgeRssPerSessionBytes: number;
  /** (RSS now − RSS before the first session) / sessions: what a session adds. */
  edgeRssDeltaPerSessionBytes: number;
  primaryRssBytes: number;
  loadRssBytes: number;
  edgeFdsMax: number;
  tcpKernelBytes: number;
  /** CPU seconds spent during the step's connects: edge processes, primary (this process), load generator. */
  cpu: { edges: number; primary: number; load: number };
}

export interface EngineResult {
  engine: string;
  edgeWorkers: number;
  baselineEdgeRssBytes: number;
  steps: RampStep[];
  stoppedBecause: string;
  held: number;
  connectRatePerSec: number;
  peakStepRatePerSec: number;
  events: Array<{
    /** Events pushed to one device before moving to the next. */
    burst: number;
    devices: number;
    seconds: number;
    pushed: number;
    acked: number;
    ackedPerSec: number;
    gaps: number;
    duplicates: number;
    eventBytes: number;
    serverCpuSeconds: number;
    primaryCpuSeconds: number;
    loadCpuSeconds: number;
  }>;
  storm: {
    dropped: number;
    eventsWhileDown: number;
    resumed: number;
    freshWelcome: number;
    failed: number;
    /** Dropped sessions whose Resume never started: the storm hit the time bound. */
    notStarted: number;
    errors: Record<string, number>;
    /** Retryable refusals (claim timeouts under load) the handsets came back after. */
    retried: Record<string, number>;
    wallMs: number;
    resumeRatePerSec: number;
    p99Ms: number;
    devicesChecked: number;
    devicesShort: number;
    eventsLost: number;
    gaps: number;
    duplicates: number;
  };
  closedByServer: Record<string, number>;
  /** The node's own counters at the end (aggregated /metrics of the primary and every edge worker). */
  serverMetrics: Record<string, number>;
  notes: string[];
}

function sum(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function log(msg: string): void {
  console.log(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}`);
}

async function benchEngine(
  engine: 'uws' | 'portable',
  engineIndex: number,
  o: BenchOptions,
  dataDir: string,
  devices: [string, string][],
  deadline: number,
): Promise<EngineResult> {
  const notes: string[] = [];
  const server: BenchServer = await startBenchServer({
    engine,
    dataDir,
    edgeWorkers: o.edgeWorkers,
    heartbeatMs: o.heartbeatMs,
    resumeWindowMs: o.resumeWindowMs,
  });
  let fleet: LoadFleet | undefined;
  try {
    await sleep(o.smoke ? 200 : 1000);
    const edgeRss = () => sum(server.edgePids().map(rssBytes));
    // Freshly started workers are still compiling and collecting: measure the idle RSS once they are quiet.
    await server.waitQuiet(o.smoke ? 2000 : 30_000);
    const baselineEdgeRssBytes = edgeRss();
    log(
      `${engine}: server up on port ${server.port}, ${server.edgePids().length} edge processes, ` +
        `baseline edge RSS ${(baselineEdgeRssBytes / 2 ** 20).toFixed(0)} MiB`,
    );
    // Source addresses 127.<engine+1>.0.<10+i>: a fresh set per engine, so no
    // 4-tuple of the first engine's run (TIME_WAIT) can collide with the second's.
    fleet = await LoadFleet.start({
      processes: o.clients,
      sourceAddress: (i) => `127.${engineIndex + 1}.${Math.floor(i / 200)}.${10 + (i % 200)}`,
      host: '127.0.0.1',
      port: server.port,
      devices,
      concurrency: Math.max(1, Math.ceil(o.concurrency / o.clients)),
      ackEvery: 100,
      ackDelayMs: 1000,
      connectTimeoutMs: 30_000,
      commandTimeoutMs: 120_000,
    });

    // 1. Ramp: at most half of this engine's time, the rest is for events and the storm.
    const rampStopAt = Date.now() + (deadline - Date.now()) / 2;
    const steps: RampStep[] = [];
    let prev = 0;
    let stoppedBecause = 'reached --sessions';
    let totalMs = 0;
    let totalOk = 0;
    for (const step of o.steps) {
      if (Date.now() > rampStopAt) {
        stoppedBecause = 'time bound: the ramp used its share of --max-minutes';
        break;
      }
      const cpu0 = server.cpu();
      const load0 = sum(fleet.pids.map(cpuSeconds));
      const phase: MergedPhase = await fleet.connect(prev, step, rampStopAt);
      const cpu1 = server.cpu();
      const load1 = sum(fleet.pids.map(cpuSeconds));
      prev = step;
      totalMs += phase.wallMs;
      totalOk += phase.ok;
      await sleep(o.smoke ? 500 : 2000);
      const stats = await fleet.stats();
      const rss = edgeRss();
      const s: RampStep = {
        target: Math.round(o.sessions * step),
        sessions: stats.open,
        failed: phase.failed,
        errors: phase.errors,
        wallMs: phase.wallMs,
        ratePerSec: Math.round((phase.ok / phase.wallMs) * 1000),
        p50Ms: phase.p50Ms,
        p99Ms: phase.p99Ms,
        edgeRssBytes: rss,
        edgeRssPerSessionBytes: stats.open > 0 ? Math.round(rss / stats.open) : 0,
        edgeRssDeltaPerSessionBytes:
          stats.open > 0 ? Math.round((rss - baselineEdgeRssBytes) / stats.open) : 0,
        primaryRssBytes: rssBytes(process.pid),
        loadRssBytes: stats.rssBytes,
        edgeFdsMax: Math.max(...server.edgePids().map(openFds)),
        tcpKernelBytes: tcpSockstat().memBytes,
        cpu: {
          edges: cpu1.edges - cpu0.edges,
          primary: cpu1.primary - cpu0.primary,
          load: load1 - load0,
        },
      };
      steps.push(s);
      log(
        `${engine}: step ${s.target}: open ${s.sessions}, failed ${s.failed} ${JSON.stringify(s.errors)}, ` +
          `${s.ratePerSec}/s (p50 ${s.p50Ms} ms, p99 ${s.p99Ms} ms), edge RSS ${(rss / 2 ** 20).toFixed(0)} MiB ` +
          `= ${(s.edgeRssPerSessionBytes / 1024).toFixed(2)} KiB/session (Δ ${(s.edgeRssDeltaPerSessionBytes / 1024).toFixed(2)} KiB), ` +
          `max fds/edge ${s.edgeFdsMax}; CPU s edges ${s.cpu.edges.toFixed(1)} primary ${s.cpu.primary.toFixed(1)} ` +
          `load ${s.cpu.load.toFixed(1)}`,
      );
      if (phase.notStarted > 0) {
        stoppedBecause =
          `time bound: the ramp used its share of --max-minutes during step ${s.target} ` +
          `(${phase.notStarted} handshakes not started)`;
        break;
      }
      // A few failures on a busy machine are reported and the ramp goes on; more than 1% ends it.
      if (phase.failed > Math.max(1, 0.01 * (phase.ok + phase.failed))) {
        stoppedBecause = `connect failures at step ${s.target}: ${JSON.stringify(phase.errors)}`;
        break;
      }
      if (memAvailableBytes() < o.minFreeBytes) {
        stoppedBecause = `machine memory: less than ${(o.minFreeBytes / 2 ** 30).toFixed(0)} GiB available`;
        break;
      }
    }
    const held = steps.at(-1)?.sessions ?? 0;

    // 2. Events: closed loop, at most eventWindow pushed and not yet acked; one phase per burst size.
    const pushedPerDevice = new Uint32Array(devices.length);
    const events: EngineResult['events'] = [];
    for (const burst of o.eventBursts) {
      const ev = await eventPhase(server, fleet, devices, held, o, deadline, burst, pushedPerDevice);
      events.push(ev);
      log(
        `${engine}: events (bursts of ${burst}): ${ev.acked} acked of ${ev.pushed} pushed in ${ev.seconds.toFixed(1)} s ` +
          `= ${ev.ackedPerSec}/s (gaps ${ev.gaps}, duplicates ${ev.duplicates}); CPU s edges ` +
          `${ev.serverCpuSeconds.toFixed(1)} primary ${ev.primaryCpuSeconds.toFixed(1)} load ${ev.loadCpuSeconds.toFixed(1)}`,
      );
    }

    // 3. Storm.
    const storm = await stormPhase(server, fleet, devices, o, pushedPerDevice, deadline);
    log(
      `${engine}: storm: dropped ${storm.dropped}, resumed ${storm.resumed}, fresh ${storm.freshWelcome}, ` +
        `failed ${storm.failed} ${JSON.stringify(storm.errors)} in ${storm.wallMs} ms (${storm.resumeRatePerSec}/s); ` +
        `devices short of events ${storm.devicesShort}, events lost ${storm.eventsLost}`,
    );
    const final = await fleet.stats();
    const serverMetrics = await server.metrics();
    return {
      engine,
      edgeWorkers: server.edgePids().length,
      baselineEdgeRssBytes,
      steps,
      stoppedBecause,
      held,
      connectRatePerSec: totalMs > 0 ? Math.round((totalOk / totalMs) * 1000) : 0,
      peakStepRatePerSec: Math.max(0, ...steps.map((s) => s.ratePerSec)),
      events,
      storm,
      closedByServer: final.closedByServer,
      serverMetrics,
      notes,
    };
  } finally {
    await fleet?.close();
    await server.stop();
  }
}

async function eventPhase(
  server: BenchServer,
  fleet: LoadFleet,
  devices: [string, string][],
  held: number,
  o: BenchOptions,
  deadline: number,
  burst: number,
  pushedPerDevice: Uint32Array,
): Promise<EngineResult['events'][number]> {
  const connected = await fleet.connectedDevices();
  const body = { n: 0, text: 'new mail: 1 message' };
  const eventBytes = server.eventFrameBytes('bench', body);
  const before = await fleet.flushAcks();
  const cpu0 = server.cpu();
  const load0 = sum(fleet.pids.map(cpuSeconds));
  // Keep time for the drain and the storm: a minute, or half of what is left when that is less.
  const left = (deadline - Date.now()) / 1000;
  const seconds = Math.min(o.eventSeconds, Math.max(0, left - Math.min(60, left / 2)));
  let pushed = 0;
  let acked = 0;
  let cursor = 0;
  const t0 = Date.now();
  if (connected.length > 0 && seconds > 0 && held > 0) {
    const end = t0 + seconds * 1000;
    let ackedNow = 0;
    let polling = false;
    const poll = setInterval(() => {
      if (polling) return;
      polling = true;
      fleet
        .stats()
        .then((s) => {
          ackedNow = s.eventsAcked - before.eventsAcked;
        })
        .finally(() => {
          polling = false;
        });
    }, 50);
    while (Date.now() < end) {
      const room = o.eventWindow - (pushed - ackedNow);
      const n = Math.min(room, 2000);
      for (let i = 0; i < n; i += burst) {
        const d = connected[cursor]!;
        cursor = (cursor + 1) % connected.length;
        for (let b = 0; b < burst; b++) {
          body.n = pushed;
          server.publishEvent(devices[d]![0], 'bench', body);
          pushedPerDevice[d]!++;
          pushed++;
        }
      }
      await new Promise((r) => setImmediate(r));
      if (n <= 0) await sleep(1);
    }
    clearInterval(poll);
    // Let the last window drain (bounded), then count.
    const drainUntil = Date.now() + 15_000;
    let s = await fleet.flushAcks();
    while (s.eventsAcked - before.eventsAcked < pushed && Date.now() < drainUntil) {
      await sleep(200);
      s = await fleet.flushAcks();
    }
    acked = s.eventsAcked - before.eventsAcked;
    // The rate counts only what was acked within the timed window plus the drain,
    // divided by the timed window: the drain of ≤ eventWindow events is part of the work.
    const total = (Date.now() - t0) / 1000;
    return {
      burst,
      devices: connected.length,
      seconds: total,
      pushed,
      acked,
      ackedPerSec: Math.round(acked / total),
      gaps: s.gaps - before.gaps,
      duplicates: s.duplicates - before.duplicates,
      eventBytes,
      serverCpuSeconds: server.cpu().edges - cpu0.edges,
      primaryCpuSeconds: server.cpu().primary - cpu0.primary,
      loadCpuSeconds: sum(fleet.pids.map(cpuSeconds)) - load0,
    };
  }
  return {
    burst,
    devices: connected.length,
    seconds: 0,
    pushed: 0,
    acked: 0,
    ackedPerSec: 0,
    gaps: 0,
    duplicates: 0,
    eventBytes,
    serverCpuSeconds: 0,
    primaryCpuSeconds: 0,
    loadCpuSeconds: 0,
  };
}

async function stormPhase(
  server: BenchServer,
  fleet: LoadFleet,
  devices: [string, string][],
  o: BenchOptions,
  pushedPerDevice: Uint32Array,
  deadline: number,
): Promise<EngineResult['storm']> {
  const wasOpen = await fleet.connectedDevices();
  const dropped = await fleet.drop(Math.min(o.stormSessions, wasOpen.length));
  log(`storm: ${dropped} sockets reset; waiting for the edges to detach them`);
  // The edges notice the RSTs within a moment; wait until they have gone quiet (bounded).
  const quietMs = await server.waitQuiet(30_000);
  log(`storm: edges quiet after ${quietMs} ms`);
  // Events for sessions without a carrier: they wait in the replay buffers.
  let eventsWhileDown = 0;
  for (let k = 0; k < o.stormEvents; k++) {
    for (const d of wasOpen) {
      server.publishEvent(devices[d]![0], 'while-down', { k });
      pushedPerDevice[d]!++;
      // Yield now and then so that the bus hands the events on in reasonable batches.
      if (++eventsWhileDown % 5000 === 0) await new Promise((r) => setImmediate(r));
    }
    await server.flush();
  }
  await server.flush();
  await sleep(500);
  const before = await fleet.stats();
  const phase = await fleet.resume(deadline - Math.min(45_000, (deadline - Date.now()) / 4));
  // Replayed events arrive right after each Welcome; give the last ones a moment, then ack.
  const drainUntil = Date.now() + 15_000;
  const seqs = await (async () => {
    for (;;) {
      const { seqs: s } = await fleet.deviceStates();
      let short = 0;
      for (const d of wasOpen) if (s[d]! < pushedPerDevice[d]!) short++;
      if (short === 0 || Date.now() > drainUntil) return s;
      await sleep(250);
    }
  })();
  const after = await fleet.flushAcks();
  let devicesShort = 0;
  let eventsLost = 0;
  for (const d of wasOpen) {
    if (seqs[d]! < pushedPerDevice[d]!) {
      devicesShort++;
      eventsLost += pushedPerDevice[d]! - seqs[d]!;
    }
  }
  return {
    dropped,
    eventsWhileDown,
    resumed: phase.resumed,
    freshWelcome: phase.ok,
    failed: phase.failed,
    notStarted: phase.notStarted,
    errors: phase.errors,
    retried: phase.retried,
    wallMs: phase.wallMs,
    resumeRatePerSec: Math.round(((phase.resumed + phase.ok) / phase.wallMs) * 1000),
    p99Ms: phase.p99Ms,
    devicesChecked: wasOpen.length,
    devicesShort,
    eventsLost,
    gaps: after.gaps - before.gaps,
    duplicates: after.duplicates - before.duplicates,
  };
}

export interface MachineInfo {
  nproc: number;
  memTotal: string;
  kernel: string;
  node: string;
  cpuModel: string;
  date: string;
  command: string;
  openFilesPerProcess: string;
  ephemeralPorts: string;
  /** 1-minute load average at the start and at the end: the machine is shared, this says how busy it was. */
  loadAvgStart: number;
  loadAvgEnd: number;
}

function machineInfo(argv: string[]): MachineInfo {
  const read = (p: string) => {
    try {
      return readFileSync(p, 'utf8').trim();
    } catch {
      return '?';
    }
  };
  return {
    nproc: os.availableParallelism(),
    memTotal: `${(os.totalmem() / 2 ** 30).toFixed(1)} GiB`,
    kernel: os.release(),
    node: process.version,
    cpuModel: os.cpus()[0]?.model ?? '?',
    date: new Date().toISOString(),
    command: ['npm run bench:edge', ...(argv.length ? ['--', ...argv] : [])].join(' '),
    openFilesPerProcess:
      read('/proc/self/limits')
        .split('\n')
        .find((l) => l.startsWith('Max open files'))
        ?.replace(/\s+/g, ' ')
        .replace('Max open files ', '') ?? '?',
    ephemeralPorts: read('/proc/sys/net/ipv4/ip_local_port_range').replace(/\s+/g, '-'),
    loadAvgStart: os.loadavg()[0]!,
    loadAvgEnd: 0,
  };
}

const SECTION_BEGIN =
  '<!-- bench:edge begin: written by test/bench/edge/run.ts; the rest of the file belongs to the other benchmarks -->';
const SECTION_END = '<!-- bench:edge end -->';

/**
 * RESULTS.md is shared by every benchmark: this run replaces (or, with
 * --append, extends) only the part between its markers, and leaves the rest.
 */
function writeEdgeSection(path: string, md: string, append: boolean): void {
  const text = existsSync(path) ? readFileSync(path, 'utf8') : '';
  const b = text.indexOf('<!-- bench:edge begin');
  const e = text.indexOf(SECTION_END);
  let out: string;
  if (b >= 0 && e > b) {
    const before = text.slice(b, e);
    const inner = append
      ? `${before.slice(before.indexOf('-->') + 3).trim()}\n\n---\n\n${md.trim()}`
      : md.trim();
    out = `${text.slice(0, b)}${SECTION_BEGIN}\n${inner}\n${SECTION_END}${text.slice(e + SECTION_END.length)}`;
  } else out = `${SECTION_BEGIN}\n${md.trim()}\n${SECTION_END}\n\n${text}`;
  writeFileSync(path, out);
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const o = parseArgs(argv);
  const started = Date.now();
  const deadline = started + o.maxMinutes * 60_000;
  // The whole run is bounded: past the deadline (plus teardown slack) the process exits, whatever hangs.
  setTimeout(
    () => {
      console.error('bench: hard time bound reached, exiting');
      process.exit(2);
    },
    o.maxMinutes * 60_000 + 60_000,
  ).unref();
  const machine = machineInfo(argv);
  log(`${machine.nproc} cores, ${machine.memTotal}, node ${machine.node}; options ${JSON.stringify(o)}`);
  const dataDir = mkdtempSync(join(os.tmpdir(), 'mmgw-bench-'));
  try {
    const t0 = Date.now();
    const devices = await provisionDevices(dataDir, o.sessions);
    const provisionMs = Date.now() - t0;
    log(`provisioned ${devices.length} devices in ${provisionMs} ms`);
    const results: EngineResult[] = [];
    const failures: string[] = [];
    for (const [i, engine] of o.engines.entries()) {
      if (Date.now() > deadline - 60_000) {
        log(`${engine}: skipped, time bound near`);
        break;
      }
      // Each engine gets an equal share of the time left, so the last one is not starved.
      const engineDeadline = Date.now() + (deadline - Date.now()) / (o.engines.length - i);
      try {
        results.push(await benchEngine(engine, i, o, dataDir, devices, engineDeadline));
      } catch (err) {
        // One engine failing must not lose the other's figures: say so in the report and go on.
        log(`${engine}: failed: ${(err as Error).stack ?? err}`);
        failures.push(`${engine}: the run of this engine failed: ${(err as Error).message}`);
      }
      await sleep(o.smoke ? 200 : 2000);
    }
    machine.loadAvgEnd = os.loadavg()[0]!;
    const md = renderResults({
      machine,
      options: o,
      results,
      provisionMs,
      devices: devices.length,
      failures,
    });
    if (o.out) {
      writeEdgeSection(o.out, md, o.append);
      log(`results written to ${o.out}`);
    } else console.log(md);
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
  log(`done in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  process.exit(0);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

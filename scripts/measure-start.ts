/**
 * `npm run bench:start`: how fast `mmgw` starts and how much memory an idle
 * edge worker holds, beside a bare `node -e 0` measured in the same run (the
 * anchor: the machine's load moves every figure, the ratio much less).
 *
 *   npm run bench:start -- [--root <checkout>]… [--runs 9] [--starts 3] [--workers 2]
 *
 * Each --root is a checkout with node_modules (and dist/ when its mmgw runs
 * the build), so one run can compare a baseline with this tree; default: this
 * tree. Per root it measures:
 *   - `node <root>/bin/mmgw.js --help`: wall time, median of --runs;
 *   - `mmgw start --edge-workers N` (every role, inproc bus, fresh data
 *     directory): wall time from spawn until /readyz answers 200, median of
 *     --starts (after one start that is not counted: it builds the SO_REUSEPORT
 *     shim and warms the page cache);
 *   - after the last start has idled 3 s: RSS and PSS of the primary, of
 *     each edge worker and of each supervised role's process (transport,
 *     transcoder), from /proc/<pid>/smaps_rollup; and of an idle bare node.
 * Prints a Markdown table (and --json prints the raw figures).
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { eventually } from '../testing/index.ts';

const HERE = fileURLToPath(new URL('..', import.meta.url));
const IDLE_MS = 3000;

function option(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  if (i < 0) return fallback;
  const n = Number(process.argv[i + 1]);
  if (!Number.isInteger(n) || n < 1) {
    console.error(`${name} needs a positive integer`);
    process.exit(2);
  }
  return n;
}

const roots = process.argv.flatMap((a, i) => (a === '--root' ? [resolve(process.argv[i + 1] ?? '.')] : []));
if (roots.length === 0) roots.push(HERE);
const runs = option('--runs', 9);
const starts = option('--starts', 3);
const workers = option('--workers', 2);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Wall and CPU seconds of one run. */
interface Run {
  wall: number;
  cpu: number;
}

/**
 * CPU seconds (user + system) of the children this process waited for, from
 * /proc/self/stat (cutime, cstime; clock ticks of 10 ms): under load the
 * wall time of a short run mostly measures the queue for a core, its CPU
 * time much less.
 */
function childrenCpuSeconds(): number {
  const fields = readFileSync('/proc/self/stat', 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[13]) + Number(fields[14])) / 100;
}

/** One run of `node args…` to its exit (it must exit 0). */
function timeRun(args: string[], cwd: string): Run {
  const cpu0 = childrenCpuSeconds();
  const t0 = process.hrtime.bigint();
  const r = spawnSync(process.execPath, args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.status !== 0) throw new Error(`node ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return { wall, cpu: childrenCpuSeconds() - cpu0 };
}

/** Medians of `runs` runs. */
function timeRuns(args: string[], cwd: string): Run {
  const all = Array.from({ length: runs }, () => timeRun(args, cwd));
  return { wall: median(all.map((r) => r.wall)), cpu: median(all.map((r) => r.cpu)) };
}

function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const srv = createServer();
    srv.once('error', fail);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => ok(port));
    });
  });
}

/**
 * VmRSS counts every page the process maps, the node executable's included
 * (~35 MiB of it in any node process, shared by all of them); Pss splits each
 * shared page between its sharers, so it is what one more process costs.
 */
interface Memory {
  rssMiB: number;
  pssMiB: number;
}

function memory(pid: number): Memory {
  const text = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  const kb = (field: string) => {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text);
    if (!m) throw new Error(`no ${field} for ${pid}`);
    return Number(m[1]) / 1024;
  };
  return { rssMiB: kb('Rss'), pssMiB: kb('Pss') };
}

/** An idle bare node process, the anchor of the memory figures. */
async function bareIdle(): Promise<Memory> {
  const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
  try {
    await new Promise((r) => setTimeout(r, IDLE_MS));
    return memory(child.pid!);
  } finally {
    child.kill();
  }
}

function children(pid: number): number[] {
  return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
    .trim()
    .split(/\s+/)
    .filter(Boolean)
    .map(Number);
}

interface StartFigures {
  readySeconds: number;
  primary?: Memory;
  workers: Memory[];
  /** Supervised role processes by role (none for a root that runs every role in the primary). */
  roles: Record<string, Memory>;
}

/** Starts a node, times it until /readyz says 200, samples RSS after IDLE_MS when asked, stops it. */
async function startOnce(root: string, sampleRss: boolean): Promise<StartFigures> {
  const data = mkdtempSync(join(tmpdir(), 'mmgw-measure-'));
  const adminPort = await freePort();
  let child: ChildProcess | undefined;
  try {
    const t0 = process.hrtime.bigint();
    child = spawn(
      process.execPath,
      [
        join(root, 'bin', 'mmgw.js'),
        'start',
        '--edge-workers',
        String(workers),
        '--port',
        '0',
        '--admin-port',
        String(adminPort),
        '--host',
        '127.0.0.1',
        '--data',
        data,
      ],
      { cwd: root, env: { ...process.env, MMGW_LOG_LEVEL: 'warn' }, stdio: ['ignore', 'ignore', 'inherit'] },
    );
    const exited = new Promise<never>((_, fail) =>
      child!.once('exit', (code) => fail(new Error(`mmgw start exited ${code} before it was ready`))),
    );
    exited.catch(() => {});
    await Promise.race([
      exited,
      eventually(
        '/readyz 200',
        async () => {
          const res = await fetch(`http://127.0.0.1:${adminPort}/readyz`);
          await res.arrayBuffer();
          return res.status === 200;
        },
        { timeoutMs: 120_000, intervalMs: 5 },
      ),
    ]);
    const readySeconds = Number(process.hrtime.bigint() - t0) / 1e9;
    if (!sampleRss) return { readySeconds, workers: [], roles: {} };
    await new Promise((r) => setTimeout(r, IDLE_MS));
    const pid = child.pid!;
    // The node also runs the SO_REUSEPORT shim's compiler on a cold cache; only node children count.
    const cmdline = (c: number) => readFileSync(`/proc/${c}/cmdline`, 'utf8').split('\0');
    const workerPids = children(pid).filter((c) => cmdline(c).includes('--internal-edge-worker'));
    const roles: Record<string, Memory> = {};
    for (const c of children(pid)) {
      const args = cmdline(c);
      const at = args.indexOf('--internal-role');
      if (at >= 0) roles[args[at + 1] ?? '?'] = memory(c);
    }
    return { readySeconds, primary: memory(pid), workers: workerPids.map(memory), roles };
  } finally {
    if (child && child.exitCode === null) {
      const gone = new Promise((r) => child!.once('exit', r));
      child.kill('SIGTERM');
      await gone;
    }
    rmSync(data, { recursive: true, force: true });
  }
}

interface RootFigures {
  root: string;
  help: Run;
  readySeconds: number;
  primary: Memory;
  workers: Memory[];
  roles: Record<string, Memory>;
}

async function measureRoot(root: string): Promise<RootFigures> {
  const bin = join(root, 'bin', 'mmgw.js');
  timeRun([bin, '--help'], root); // page cache
  const help = timeRuns([bin, '--help'], root);
  await startOnce(root, false);
  const ready: number[] = [];
  let last: StartFigures | undefined;
  for (let i = 0; i < starts; i++) {
    last = await startOnce(root, i === starts - 1);
    ready.push(last.readySeconds);
  }
  return {
    root,
    help,
    readySeconds: median(ready),
    primary: last!.primary!,
    workers: last!.workers,
    roles: last!.roles,
  };
}

const loadBefore = loadavg()[0]!;
timeRun(['-e', '0'], HERE);
const bare = timeRuns(['-e', '0'], HERE);
const results: RootFigures[] = [];
for (const root of roots) results.push(await measureRoot(root));
const bareAfter = timeRuns(['-e', '0'], HERE);
const bareMemory = await bareIdle();

if (process.argv.includes('--json')) {
  console.log(JSON.stringify({ bare, bareAfter, bareMemory, results }, null, 1));
} else {
  const mem = (m: Memory) => `${m.rssMiB.toFixed(0)} / ${m.pssMiB.toFixed(0)}`;
  console.log(`- date: ${new Date().toISOString()}`);
  console.log(`- command: \`npm run bench:start -- ${process.argv.slice(2).join(' ')}\``.replace(/ `$/, '`'));
  console.log(
    `- nproc: ${cpus().length} (${cpus()[0]?.model ?? '?'}); memory: ${(totalmem() / 2 ** 30).toFixed(1)} GiB; node ${process.version}`,
  );
  console.log(
    `- 1-minute load average at start ${loadBefore.toFixed(1)}, at end ${loadavg()[0]!.toFixed(1)}`,
  );
  const secs = (r: Run) => `${r.wall.toFixed(3)} s (CPU ${r.cpu.toFixed(2)} s)`;
  console.log(
    `- \`node -e 0\`: ${secs(bare)} before the roots, ${secs(bareAfter)} after (medians of ${runs}); an idle bare node holds RSS / PSS ${mem(bareMemory)} MiB`,
  );
  console.log('');
  console.log(
    `| root | \`mmgw --help\`: wall s (× \`node -e 0\`); CPU s (×) | \`mmgw start --edge-workers ${workers}\` until /readyz 200, s | primary idle RSS / PSS, MiB | each edge worker idle RSS / PSS, MiB | supervised role processes idle RSS / PSS, MiB |`,
  );
  console.log('| --- | ---: | ---: | ---: | ---: | ---: |');
  for (const r of results)
    console.log(
      `| ${r.root} | ${r.help.wall.toFixed(3)} (${(r.help.wall / bare.wall).toFixed(1)}×); ${r.help.cpu.toFixed(2)} (${(r.help.cpu / bare.cpu).toFixed(1)}×) | ${r.readySeconds.toFixed(2)} | ${mem(r.primary)} | ${r.workers.map(mem).join('; ')} | ${
        Object.entries(r.roles)
          .map(([role, m]) => `${role} ${mem(m)}`)
          .join('; ') || '—'
      } |`,
    );
}

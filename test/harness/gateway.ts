/**
 * Test harness: a real gateway process (`node bin/mmgw.js start`, which runs
 * the build in dist/: see dist.ts) on free ports with its own temporary data
 * directory, plus device provisioning.
 *
 *   const gw = await startGateway();        // every role in one process, inproc bus
 *   const gw = await startGateway({ supervise: true });   // as `mmgw start`: supervised children
 *   t.after(() => gw.stop());
 *   const { imei, secret } = await provisionDevice(gw.dataDir);
 *   // connect to gw.url (ws://127.0.0.1:<devicePort>)
 *
 * Every gateway started here is killed when the test process exits, even
 * when a test fails before calling stop().
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createWriteStream, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { imeiWithCheckDigit } from '../../server/store/imei.ts';
import { eventually } from '../../testing/index.ts';
import { ensureBuilt } from './dist.ts';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const MMGW_BIN = join(ROOT, 'bin', 'mmgw.js');
// Before any test of the importing file runs MMGW_BIN.
await ensureBuilt();

const run = promisify(execFile);

/**
 * The peers the tests start listen on loopback, which the outbound policy
 * refuses by default (server/net/destination-policy.ts): every gateway
 * started here opens it, unless a test sets MMGW_ALLOW_DESTINATIONS itself.
 */
export const LOOPBACK_PEERS = '127.0.0.0/8,::1';

/** What `mmgw start --ready-file` writes. */
interface ReadyInfo {
  pid: number;
  nodeId: string;
  devicePort: number;
  adminPort: number;
}

export interface GatewayOptions {
  /** Extra arguments after `start` (e.g. ['--role', 'edge', '--bus', natsUrl]). */
  args?: string[];
  /** Extra environment (on top of the test process's, and MMGW_ALLOW_DESTINATIONS=LOOPBACK_PEERS). */
  env?: Record<string, string>;
  /** Data directory to use (kept afterwards); default a fresh temporary one, removed by stop(). */
  dataDir?: string;
  /** How long to wait for the ready file. Default 60 s. */
  timeoutMs?: number;
  /** Node options before the script (e.g. ['--cpu-prof', '--cpu-prof-dir', dir]; NODE_OPTIONS refuses some). */
  nodeArgs?: string[];
  /**
   * Run as `mmgw start` does by default: the transport and the transcoder in supervised child
   * processes. Default false (--no-supervise): every role in the one process, as the suites
   * expect; MMGW_TEST_SUPERVISE=1 in the test's environment makes true the default (to run the
   * suites against the supervised layout).
   */
  supervise?: boolean;
  /**
   * Another checkout to run `mmgw` from (its bin/mmgw.js and dist/, built): a release before
   * this one, for a rolling upgrade under traffic. Default this tree.
   */
  root?: string;
}

/** The `mmgw` command of `root` (default this tree). */
function mmgwBin(root: string | undefined): string {
  return root === undefined ? MMGW_BIN : join(root, 'bin', 'mmgw.js');
}

export interface Gateway {
  devicePort: number;
  adminPort: number;
  pid: number;
  nodeId: string;
  dataDir: string;
  /** ws://127.0.0.1:<devicePort> (wss:// with --tls-cert) */
  url: string;
  /** http://127.0.0.1:<adminPort> (https:// with --tls-cert) */
  adminUrl: string;
  /** Sends the signal (default SIGTERM) and resolves with the exit code (null when killed by a signal). */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  /** SIGKILL, no waiting. */
  kill(): void;
  /** Lines the process printed so far (its JSON logs). */
  stdout: string[];
  stderr: string[];
  process: ChildProcess;
}

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // 'exit' handlers must be synchronous: SIGKILL is.
  process.on('exit', () => {
    for (const p of live) p.kill('SIGKILL');
  });
}

function lines(stream: NodeJS.ReadableStream | null, into: string[]): void {
  let rest = '';
  stream?.setEncoding('utf8');
  stream?.on('data', (chunk: string) => {
    const parts = (rest + chunk).split('\n');
    rest = parts.pop() ?? '';
    into.push(...parts);
  });
  stream?.on('end', () => {
    if (rest) into.push(rest);
  });
}

/**
 * MMGW_TEST_LOG_DIR=dir keeps every gateway's output in dir/<data dir name>-<pid>.log
 * (the chaos suite's processes, for a look after a fault went wrong).
 */
function keepLog(child: ChildProcess, dataDir: string): void {
  const dir = process.env.MMGW_TEST_LOG_DIR;
  if (!dir) return;
  mkdirSync(dir, { recursive: true });
  const file = createWriteStream(join(dir, `${basename(dataDir)}-${child.pid}.log`));
  child.stdout?.pipe(file, { end: false });
  child.stderr?.pipe(file, { end: false });
  child.once('close', () => file.end());
}

export async function startGateway(opts: GatewayOptions = {}): Promise<Gateway> {
  installExitHook();
  const ownDir = opts.dataDir === undefined;
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), 'mmgw-gw-'));
  const readyFile = join(dataDir, `ready-${process.pid}-${Date.now()}.json`);
  const args = [
    ...(opts.nodeArgs ?? []),
    mmgwBin(opts.root),
    'start',
    '--port',
    '0',
    '--admin-port',
    '0',
    '--host',
    '127.0.0.1',
    '--data',
    dataDir,
    '--ready-file',
    readyFile,
    ...((opts.supervise ?? process.env.MMGW_TEST_SUPERVISE === '1') ? [] : ['--no-supervise']),
    ...(opts.args ?? []),
  ];
  const child = spawn(process.execPath, args, {
    cwd: opts.root ?? ROOT,
    env: {
      ...process.env,
      MMGW_LOG_LEVEL: process.env.MMGW_LOG_LEVEL ?? 'info',
      MMGW_ALLOW_DESTINATIONS: process.env.MMGW_ALLOW_DESTINATIONS ?? LOOPBACK_PEERS,
      ...opts.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  const stdout: string[] = [];
  const stderr: string[] = [];
  lines(child.stdout, stdout);
  lines(child.stderr, stderr);
  keepLog(child, dataDir);
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => {
      live.delete(child);
      resolve(code);
    });
  });

  const timeoutMs = opts.timeoutMs ?? 60_000;
  // The ready file, or the exit code of a gateway that died before writing it.
  const outcome = await eventually(
    'the ready file',
    (): { info: ReadyInfo } | { exited: number | null } | undefined => {
      if (child.exitCode !== null || child.signalCode !== null) return { exited: child.exitCode };
      try {
        return { info: JSON.parse(readFileSync(readyFile, 'utf8')) as ReadyInfo };
      } catch {
        return undefined;
      }
    },
    { timeoutMs, intervalMs: 50 },
  ).catch(() => ({ timedOut: true }) as const);
  if (!('info' in outcome)) {
    child.kill('SIGKILL');
    const tail = [...stderr, ...stdout.filter((l) => /"level":"(error|fatal)"/.test(l))]
      .slice(-30)
      .join('\n');
    const why =
      'exited' in outcome
        ? `exited with code ${outcome.exited} before it was ready`
        : `did not become ready within ${timeoutMs} ms`;
    throw new Error(`gateway ${why}\n--- its output ---\n${tail}`);
  }
  const ready = outcome.info;

  let stopping: Promise<number | null> | undefined;
  const tls = (opts.args ?? []).includes('--tls-cert') || opts.env?.MMGW_TLS_CERT !== undefined;
  const s = tls ? 's' : '';
  const gateway: Gateway = {
    devicePort: ready.devicePort,
    adminPort: ready.adminPort,
    pid: ready.pid,
    nodeId: ready.nodeId,
    dataDir,
    url: `ws${s}://127.0.0.1:${ready.devicePort}`,
    adminUrl: `http${s}://127.0.0.1:${ready.adminPort}`,
    stdout,
    stderr,
    process: child,
    stop(signal: NodeJS.Signals = 'SIGTERM') {
      stopping ??= (async () => {
        if (child.exitCode === null && child.signalCode === null) child.kill(signal);
        // A node that does not stop within 30 s is killed: a test must never hang on it.
        const guard = setTimeout(() => child.kill('SIGKILL'), 30_000);
        const code = await exited;
        clearTimeout(guard);
        if (ownDir) rmSync(dataDir, { recursive: true, force: true });
        return code;
      })();
      return stopping;
    },
    kill() {
      child.kill('SIGKILL');
    },
  };
  return gateway;
}

/** Waits until the node says it is ready on /readyz (for an edge: it knows a transport node). */
export async function waitReady(gw: Gateway, timeoutMs = 60_000): Promise<void> {
  await eventually(
    `${gw.nodeId} ready on /readyz`,
    async () => {
      const res = await fetch(`${gw.adminUrl}/readyz`);
      await res.arrayBuffer();
      return res.status === 200;
    },
    { timeoutMs, intervalMs: 100 },
  );
}

/** Makes a valid IMEI from 14 digits (adds the Luhn check digit). */
export function luhnImei(prefix14: string): string {
  return imeiWithCheckDigit(prefix14);
}

let imeiCounter = 0;

/** A fresh valid IMEI, different on every call within a test process. */
export function nextImei(): string {
  imeiCounter++;
  const serial = String((process.pid * 1000 + imeiCounter) % 1_000_000).padStart(6, '0');
  return luhnImei(`35${String(imeiCounter % 1_000_000).padStart(6, '0')}${serial}`);
}

/** Operators already added, per data directory (`device add` refuses an operator that does not exist). */
const operatorsAdded = new Set<string>();

/** `mmgw operator add` once per data directory and operator; one added earlier by a test is fine too. */
export async function ensureOperator(dataDir: string, operator: string): Promise<void> {
  const key = `${resolve(dataDir)}\0${operator}`;
  if (operatorsAdded.has(key)) return;
  const r = await runMmgw(['operator', 'add', operator, '--data', dataDir, '--json']);
  if (r.code !== 0 && !r.stdout.includes('registry.duplicate'))
    throw new Error(`mmgw operator add ${operator} failed (${r.code}): ${r.stdout} ${r.stderr}`);
  operatorsAdded.add(key);
}

/**
 * Provisions a device through the CLI (the path an operator uses; works while
 * the gateway runs on the same data directory). Returns its one-time secret.
 */
export async function provisionDevice(
  dataDir: string,
  imei: string = nextImei(),
  options: { operator?: string; profile?: string } = {},
): Promise<{ imei: string; secret: string }> {
  await ensureOperator(dataDir, options.operator ?? 'test');
  const args = [
    MMGW_BIN,
    'device',
    'add',
    '--imei',
    imei,
    '--operator',
    options.operator ?? 'test',
    '--data',
    dataDir,
    '--json',
  ];
  if (options.profile) args.push('--profile', options.profile);
  const { stdout } = await run(process.execPath, args, { cwd: ROOT });
  const out = JSON.parse(stdout);
  return { imei: out.device.imei, secret: out.secret };
}

/** Runs `mmgw …` and returns its exit code and output (never throws on a non-zero exit). */
export async function runMmgw(
  args: string[],
  options: { env?: Record<string, string>; cwd?: string; input?: string; root?: string } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [mmgwBin(options.root), ...args], {
      cwd: options.cwd ?? ROOT,
      env: { ...process.env, ...options.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.end(options.input ?? '');
  });
}

export interface ReadyRecord {
  pid: number;
  at: number;
}

/** The primary's "role process ready" log lines of a role, in order: pid and when. */
export function readyRecords(gw: Gateway, role: string): ReadyRecord[] {
  const out: ReadyRecord[] = [];
  for (const line of gw.stdout) {
    if (!line.includes('role process ready')) continue;
    const rec = JSON.parse(line) as { role?: string; childPid: number; time: string; msg: string };
    if (rec.msg === 'role process ready' && rec.role === role)
      out.push({ pid: rec.childPid, at: Date.parse(rec.time) });
  }
  return out;
}

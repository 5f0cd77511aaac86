/**
 * Starts a real nats-server (the Debian package) on a free loopback port for
 * one test file, and stops it by pid afterwards — also when the test process
 * exits without cleaning up.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { clusteredCasExact } from '../../server/store/shared/nats-kv.ts';
import { waitForServer } from './server-probe.ts';

export interface NatsServerHandle {
  url: string;
  port: number;
  pid: number;
  stop(): Promise<void>;
}

export interface NatsServerOptions {
  jetstream?: boolean;
  /** The server's max_payload (default: the server's own, 1 MiB); written to a config file. */
  maxPayloadBytes?: number;
  /** How long to wait for the server to accept connections (default 15 s). */
  readyTimeoutMs?: number;
  /** Listen on this port (a restart where the clients expect it); default a free one. */
  port?: number;
}

/** Where Debian puts it (/usr/sbin) and anything on PATH. */
export function findNatsServer(): string {
  const candidates = [
    process.env.NATS_SERVER_BIN,
    ...(process.env.PATH ?? '').split(delimiter).map((dir) => join(dir, 'nats-server')),
    '/usr/sbin/nats-server',
    '/usr/bin/nats-server',
    '/usr/local/bin/nats-server',
  ];
  for (const path of candidates) {
    if (!path) continue;
    try {
      accessSync(path, constants.X_OK);
      return path;
    } catch {
      // next candidate
    }
  }
  throw new Error(
    'nats-server not found (looked on PATH, /usr/sbin, /usr/bin, /usr/local/bin). ' +
      'Install it with `bash scripts/install-peers.sh` (Debian package nats-server), or set NATS_SERVER_BIN.',
  );
}

/** A port that was free a moment ago (bind 127.0.0.1:0, read it, close). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error('no free port'))));
    });
  });
}

/** Up once a fresh TCP connection reads the server's INFO line. */
const NATS_INFO = {
  verdict: (received: string) => (received.length > 0 ? received.startsWith('INFO') : undefined),
  silenceMs: 1000,
};

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Last resort: a test that crashed must not leave servers behind.
  process.on('exit', () => {
    for (const child of live) {
      try {
        if (child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  });
}

/** Kills `child` if this process exits before it is stopped (other harnesses of nats-server use it too); returns the untrack. */
export function killOnExit(child: ChildProcess): () => void {
  installExitHook();
  live.add(child);
  return () => live.delete(child);
}

/** Resolves true once `child` has exited, false after `ms` without an exit. */
export function waitExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.pid === undefined) return;
  if (child.exitCode === null && child.signalCode === null) {
    try {
      process.kill(child.pid, 'SIGTERM');
    } catch {
      // already gone
    }
    if (!(await waitExit(child, 3000))) {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
      await waitExit(child, 3000);
    }
  }
  live.delete(child);
}

async function startOnce(
  binary: string,
  port: number,
  storeDir: string | undefined,
  readyTimeoutMs: number,
  configFile: string | undefined,
): Promise<{ child: ChildProcess } | { retry: true; reason: string }> {
  const args = ['-a', '127.0.0.1', '-p', String(port)];
  if (storeDir !== undefined) args.push('-js', '-sd', storeDir);
  if (configFile !== undefined) args.push('-c', configFile);
  const child = spawn(binary, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  live.add(child);
  let stderr = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (s: string) => {
    if (stderr.length < 8192) stderr += s;
  });
  let exited = false;
  child.once('exit', () => {
    exited = true;
  });
  child.once('error', () => {
    exited = true;
  });
  try {
    await waitForServer(`nats-server on port ${port}`, '127.0.0.1', port, NATS_INFO, {
      timeoutMs: readyTimeoutMs,
      intervalMs: 50,
      isDead: () => (exited ? 'nats-server exited' : undefined),
    });
    return { child };
  } catch {
    // Exited or not up in time: the output says which.
  }
  await stopChild(child);
  if (/address already in use/i.test(stderr)) return { retry: true, reason: stderr };
  throw new Error(`nats-server did not become ready on port ${port}: ${stderr.trim() || 'no output'}`);
}

export async function startNatsServer(opts: NatsServerOptions = {}): Promise<NatsServerHandle> {
  const binary = findNatsServer();
  installExitHook();
  const storeDir = opts.jetstream ? mkdtempSync(join(tmpdir(), 'mmgw-nats-')) : undefined;
  let configDir: string | undefined;
  let configFile: string | undefined;
  if (opts.maxPayloadBytes !== undefined) {
    configDir = mkdtempSync(join(tmpdir(), 'mmgw-nats-conf-'));
    configFile = join(configDir, 'nats-server.conf');
    writeFileSync(configFile, `max_payload: ${opts.maxPayloadBytes}\n`);
  }
  const cleanupStore = (): void => {
    if (storeDir !== undefined) rmSync(storeDir, { recursive: true, force: true });
    if (configDir !== undefined) rmSync(configDir, { recursive: true, force: true });
  };
  try {
    // The probe port may be taken by someone else between probe and bind: try again with another.
    for (let attempt = 0; attempt < 5; attempt++) {
      const port = opts.port ?? (await freePort());
      const started = await startOnce(binary, port, storeDir, opts.readyTimeoutMs ?? 15_000, configFile);
      if ('retry' in started) continue;
      const { child } = started;
      let stopping: Promise<void> | undefined;
      return {
        url: `nats://127.0.0.1:${port}`,
        port,
        pid: child.pid!,
        stop: () => {
          stopping ??= stopChild(child).finally(cleanupStore);
          return stopping;
        },
      };
    }
  } catch (err) {
    cleanupStore();
    throw err;
  }
  cleanupStore();
  throw new Error('nats-server: no free port after 5 attempts');
}

/**
 * Why compare-and-set races on a replicated bucket cannot be tested with the
 * nats-server found here (undefined when they can): before 2.9.21 two writes
 * in flight at once may both be stored (nats-io/nats-server#4320).
 */
export function clusteredCasProblem(): string | undefined {
  const out = execFileSync(findNatsServer(), ['--version'], { encoding: 'utf8' }).trim();
  const version = /v\d+\.\d+\.\d+/.exec(out)?.[0] ?? out;
  return clusteredCasExact(version)
    ? undefined
    : `${out} lets concurrent compare-and-set writes both succeed on R3 (nats-io/nats-server#4320)`;
}

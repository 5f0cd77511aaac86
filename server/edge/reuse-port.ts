/**
 * Several edge worker processes on one port (a process may hold at most
 * 20,000 open files here, so 250k sessions need a dozen processes).
 *
 * The kernel's way is SO_REUSEPORT, but neither engine sets it on Linux:
 * the pinned uWebSockets.js build sets it only on other systems (verified
 * with strace), and Node 20 has no `reusePort` listen option. So worker
 * processes are started with a tiny LD_PRELOAD shim (reuseport/*.c) that
 * sets SO_REUSEPORT in bind() for the listed ports. It is compiled on first
 * use with the system C compiler into a private cache directory (cached by
 * hash). Whatever is preloaded runs inside the gateway, so that directory
 * must be this user's alone: a file some other user put in a shared /tmp
 * under the expected name is never loaded (issue #11).
 *
 * The portable engine can instead run under node:cluster, whose workers
 * share the primary's listening handle without any of this.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, readFileSync, renameSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GatewayError } from '../../device-protocol/errors.ts';

export const REUSEPORT_PORTS_ENV = 'MMGW_REUSEPORT_PORTS';
const SOURCE = fileURLToPath(new URL('./reuseport/mmgw-reuseport.c', import.meta.url));

function run(cmd: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: 60_000 }, (err, _stdout, stderr) => {
      if (err) reject(new Error(`${cmd} failed: ${stderr || err.message}`));
      else resolve();
    });
  });
}

/**
 * A directory only this user can write: created 0700 if absent; refused if it
 * is a symbolic link, belongs to someone else or is writable by group or
 * others (then anyone could have placed or swapped the library in it).
 */
export function privateCacheDir(path: string): string {
  const uid = typeof process.getuid === 'function' ? process.getuid() : 0;
  mkdirSync(path, { recursive: true, mode: 0o700 });
  const st = lstatSync(path);
  if (!st.isDirectory() || st.uid !== uid || (st.mode & 0o022) !== 0) {
    throw new GatewayError(
      'config.invalid',
      `${path} must be a directory of user ${uid} that only it can write (it is not): refusing to load a preload library from it.`,
    );
  }
  return path;
}

/** A cached library is used only if this user built it and nobody else could have changed it. */
function trustworthy(file: string): boolean {
  const uid = typeof process.getuid === 'function' ? process.getuid() : 0;
  const st = statSync(file);
  return st.isFile() && st.uid === uid && (st.mode & 0o022) === 0;
}

/**
 * Builds the shim if needed and returns the path of the shared object.
 * Throws GatewayError('config.invalid') when no C compiler is available, or
 * when the cache directory or a cached library is not this user's alone.
 */
export async function buildReusePortPreload(
  options: { cacheDir?: string; cc?: string } = {},
): Promise<string> {
  const source = readFileSync(SOURCE);
  const hash = createHash('sha256').update(source).digest('hex').slice(0, 16);
  const uid = typeof process.getuid === 'function' ? process.getuid() : 0;
  const dir = privateCacheDir(options.cacheDir ?? join(tmpdir(), `mmgw-${uid}`));
  const out = join(dir, `mmgw-reuseport-${hash}.so`);
  if (existsSync(out)) {
    if (trustworthy(out)) return out;
    throw new GatewayError(
      'config.invalid',
      `${out} is not this user's own file (owner or mode): refusing to preload it. Remove it and start again.`,
    );
  }
  const tmp = `${out}.${process.pid}.tmp`;
  try {
    await run(options.cc ?? process.env.CC ?? 'cc', ['-shared', '-fPIC', '-O2', '-o', tmp, SOURCE, '-ldl']);
  } catch (err) {
    throw new GatewayError(
      'config.invalid',
      'Edge worker processes sharing a port need SO_REUSEPORT, which needs a C compiler (cc) to build a small preload library; install one (apt-get install gcc) or run the portable engine under node:cluster.',
      { cause: err },
    );
  }
  renameSync(tmp, out); // atomic: a concurrent builder never sees half a file
  return out;
}

/**
 * Environment for a worker process that must share `port` with others
 * (`'*'`: every TCP port it binds; use that only when the port is 0 and the
 * first worker picks it). Pass it to child_process.fork/spawn.
 */
export async function reusePortEnv(
  port: number | '*',
  options: { cacheDir?: string; cc?: string } = {},
): Promise<Record<string, string>> {
  if (process.platform !== 'linux') return {};
  const lib = await buildReusePortPreload(options);
  const preload = process.env.LD_PRELOAD ? `${lib}:${process.env.LD_PRELOAD}` : lib;
  return { LD_PRELOAD: preload, [REUSEPORT_PORTS_ENV]: String(port) };
}

/** Is this process set up to share `port` (shim loaded and the port listed)? Always true off Linux. */
export function reusePortActive(port: number): boolean {
  if (process.platform !== 'linux') return true;
  const listed = (process.env[REUSEPORT_PORTS_ENV] ?? '').split(',').map((s) => s.trim());
  if (!listed.includes('*') && !listed.includes(String(port))) return false;
  try {
    return readFileSync('/proc/self/maps', 'utf8').includes('mmgw-reuseport-');
  } catch {
    return false;
  }
}

/**
 * The data directory's own safety: who may read it, and who may run on it.
 *
 * Everything under it is the gateway's alone (registry with secret hashes,
 * sealed credentials, keys, device logs), so directories are 0700 and files
 * 0600 whatever the umask (lmdb creates its files with the process umask).
 *
 * One gateway per data directory: two `mmgw start` on the same lmdb
 * environments would each believe it owns the sessions, the sweeps and the
 * key files. The gateway takes `mmgw.lock` at start; a second one stops with
 * a message naming the first one's pid. The command-line tools (`mmgw device
 * …`) are meant to work beside a running gateway and do not take it.
 */
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  linkSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { GatewayError } from '../../device-protocol/errors.ts';

export const LOCK_FILE = 'mmgw.lock';

/** The file's text, or undefined when there is no such file (any other error is thrown). */
export function readFileIfThere(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/**
 * Writes `text` to `file` (0600) unless it exists: a temp file hard-linked
 * into place, so that the link fails when another process won the race and a
 * crash never leaves a half-written file. True when this call created it.
 */
export function createPrivateFileOnce(file: string, text: string): boolean {
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  writeFileSync(tmp, text, { mode: 0o600, flag: 'wx' });
  chmodSync(tmp, 0o600);
  try {
    linkSync(tmp, file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    return false;
  } finally {
    rmSync(tmp, { force: true });
  }
}

/** Creates the directory (and parents) as 0700, and narrows an existing one to 0700. */
export function ensurePrivateDir(path: string): void {
  mkdirSync(path, { recursive: true, mode: 0o700 });
  const st = lstatSync(path);
  if ((st.mode & 0o077) !== 0 && st.uid === process.getuid?.()) chmodSync(path, 0o700);
}

/**
 * Narrows every file below `dir` to 0600 and every directory to 0700 (files
 * an older release or lmdb created with the umask's 0644). Symbolic links are
 * left alone: following one could change a file outside the data directory.
 */
export function makePrivate(dir: string): void {
  const uid = process.getuid?.();
  const walk = (path: string): void => {
    for (const name of readdirSync(path)) {
      const child = join(path, name);
      const st = lstatSync(child);
      if (st.uid !== uid) continue;
      if (st.isDirectory()) {
        if ((st.mode & 0o077) !== 0) chmodSync(child, 0o700);
        walk(child);
      } else if (st.isFile() && (st.mode & 0o077) !== 0) {
        chmodSync(child, 0o600);
      }
    }
  };
  walk(dir);
}

interface LockOwner {
  pid: number;
  /** The owner's start time as /proc gives it, so that a reused pid is not mistaken for the owner. */
  started: string;
  at: string;
}

/** Start time of a process in clock ticks since boot (/proc/PID/stat field 22); '' when unknown. */
function processStart(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) is in parentheses and may contain spaces: count from its end.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19] ?? '';
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined; // no such process
    return '';
  }
}

function alive(owner: LockOwner): boolean {
  if (owner.pid === process.pid) return false;
  try {
    process.kill(owner.pid, 0);
  } catch (err) {
    // EPERM: it exists but belongs to someone else: still an owner.
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const started = processStart(owner.pid);
  if (started === undefined) return false;
  return started === '' || owner.started === '' || started === owner.started;
}

function readOwner(path: string): LockOwner | undefined {
  try {
    const o = JSON.parse(readFileSync(path, 'utf8')) as Partial<LockOwner>;
    if (typeof o.pid !== 'number' || !Number.isInteger(o.pid) || o.pid <= 0) return undefined;
    return { pid: o.pid, started: typeof o.started === 'string' ? o.started : '', at: String(o.at ?? '') };
  } catch {
    return undefined;
  }
}

export interface DataDirLock {
  readonly path: string;
  /** Removes the lock if it is still this process's. */
  release(): void;
}

/**
 * Takes the data directory for this process, or throws config.invalid naming
 * the process that holds it. A lock left by a process that is gone (kill -9,
 * a crash, a reboot) is taken over.
 */
export function lockDataDir(dir: string): DataDirLock {
  ensurePrivateDir(dir);
  const path = join(dir, LOCK_FILE);
  const me: LockOwner = {
    pid: process.pid,
    started: processStart(process.pid) ?? '',
    at: new Date().toISOString(),
  };
  const content = `${JSON.stringify(me)}\n`;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      writeFileSync(path, content, { flag: 'wx', mode: 0o600 });
      return lockHandle(path, me);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const owner = readOwner(path);
    if (owner !== undefined && alive(owner)) {
      throw new GatewayError(
        'config.invalid',
        `The data directory ${dir} is in use by another gateway (pid ${owner.pid}, since ${owner.at}); ` +
          'stop it first, or start this one with another --data.',
        { field: 'data' },
      );
    }
    // Stale (or unreadable: a crash while writing it). Replace it atomically, then try again:
    // if another starting gateway replaced it first, its wx or ours fails and the loser sees the winner.
    const tmp = `${path}.${process.pid}.stale`;
    try {
      renameSync(path, tmp);
      rmSync(tmp, { force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  throw new GatewayError('config.invalid', `The data directory ${dir} could not be locked.`, {
    field: 'data',
  });
}

function lockHandle(path: string, me: LockOwner): DataDirLock {
  let released = false;
  return {
    path,
    release() {
      if (released) return;
      released = true;
      const owner = readOwner(path);
      if (owner?.pid === me.pid && owner.started === me.started) rmSync(path, { force: true });
    },
  };
}

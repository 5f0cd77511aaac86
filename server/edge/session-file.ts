/**
 * The sessions of an edge that stops with no other edge to take them (a
 * single-node gateway, SIGTERM or drain): written to its data directory and
 * taken back on the next start, so that devices resume (`resumed: true`)
 * across a restart. One JSON file, 0600, written through a temporary file
 * and a rename (a reader sees all of it or none), read once and removed.
 *
 * Record (format 'mmgw.edge.sessions', v 1): the SessionSnapshot of each
 * session with its frames in base64, and when it lost its carrier
 * (`detachedAt`, wall clock): a session whose resume window passed while the
 * gateway was down is dropped on reading. A file that is not such a record
 * (corrupt, cut short, another format, a newer version) is refused with
 * config.bad_sessions_file and set aside as `<file>.refused`, never read again.
 */
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { GatewayError } from '../../device-protocol/errors.ts';
import { DeviceSession, type SessionSnapshot } from './device-session.ts';

export const SESSION_FILE_FORMAT = 'mmgw.edge.sessions';
/** The newest record version written; the reader accepts this one and every older one. */
export const SESSION_FILE_VERSION = 1;

interface StoredSession extends Omit<SessionSnapshot, 'frames'> {
  /** Unacked frames, base64. */
  frames: string[];
  detachedAt: number;
}

interface SessionFileV1 {
  format: typeof SESSION_FILE_FORMAT;
  v: 1;
  writtenAt: number;
  sessions: StoredSession[];
}

export interface LoadedSessions {
  /** Sessions still within their resume window, detached since `detachedAt`. */
  sessions: DeviceSession[];
  /** Sessions dropped because their resume window passed. */
  expired: number;
}

function refused(path: string, why: string, cause?: unknown): GatewayError {
  return new GatewayError('config.bad_sessions_file', `The sessions file ${path} is refused: ${why}.`, {
    field: 'data',
    ...(cause === undefined ? {} : { cause }),
  });
}

/** Writes the sessions (each detached since its detachedAt) atomically, mode 0600. */
export function writeSessionFile(path: string, sessions: Iterable<DeviceSession>, now: number): number {
  const stored: StoredSession[] = [];
  for (const s of sessions) {
    const snap = s.snapshot();
    stored.push({
      ...snap,
      frames: snap.frames.map((f) => Buffer.from(f.buffer, f.byteOffset, f.byteLength).toString('base64')),
      // An attached session (a Resume raced the drain) counts as detached from now.
      detachedAt: s.carrier === undefined && s.detachedAt > 0 ? s.detachedAt : now,
    });
  }
  const record: SessionFileV1 = { format: SESSION_FILE_FORMAT, v: 1, writtenAt: now, sessions: stored };
  const tmp = `${path}.${process.pid}.tmp`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, JSON.stringify(record));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  return stored.length;
}

/**
 * Reads and removes the sessions file: undefined when there is none. Throws
 * config.bad_sessions_file (after setting the file aside) when it is not a
 * sessions record of a version this reader knows.
 */
export function takeSessionFile(
  path: string,
  now: number,
  resumeWindowMs: number,
): LoadedSessions | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw refused(path, 'it cannot be read', err);
  }
  let loaded: LoadedSessions;
  try {
    loaded = parseSessionFile(path, text, now, resumeWindowMs);
  } catch (err) {
    try {
      renameSync(path, `${path}.refused`);
    } catch {
      // Left where it is: refused again on the next start, which is still no crash.
    }
    throw err;
  }
  // The sessions live in memory now: a later start must not bring back what they were then.
  rmSync(path, { force: true });
  return loaded;
}

export function parseSessionFile(
  path: string,
  text: string,
  now: number,
  resumeWindowMs: number,
): LoadedSessions {
  let record: unknown;
  try {
    record = JSON.parse(text);
  } catch (err) {
    throw refused(path, 'it is not JSON (corrupt or cut short)', err);
  }
  const r = record as Partial<SessionFileV1> | null;
  if (r === null || typeof r !== 'object' || r.format !== SESSION_FILE_FORMAT) {
    throw refused(path, `it is not a ${SESSION_FILE_FORMAT} record`);
  }
  if (r.v !== 1) throw refused(path, `version ${String(r.v)} is not one this gateway reads`);
  if (!Array.isArray(r.sessions)) throw refused(path, 'it has no session list');
  const sessions: DeviceSession[] = [];
  let expired = 0;
  for (const entry of r.sessions as unknown[]) {
    const e = entry as Partial<StoredSession> | null;
    if (e === null || typeof e !== 'object' || !Number.isFinite(e.detachedAt) || !Array.isArray(e.frames)) {
      throw refused(path, 'a session entry is malformed');
    }
    if (now - (e.detachedAt as number) > resumeWindowMs) {
      expired++;
      continue;
    }
    let session: DeviceSession;
    try {
      const frames = e.frames.map((f) => {
        if (typeof f !== 'string') throw new TypeError('frame is not base64 text');
        return new Uint8Array(Buffer.from(f, 'base64'));
      });
      session = DeviceSession.fromSnapshot({ ...(e as StoredSession), frames } as SessionSnapshot);
    } catch (err) {
      throw refused(path, 'a session entry is malformed', err);
    }
    session.detachedAt = e.detachedAt as number;
    sessions.push(session);
  }
  return { sessions, expired };
}

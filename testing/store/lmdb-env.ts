/**
 * A throwaway lmdb environment for unit tests of the registry's pieces
 * (server/store/*-store.ts and friends), closed and deleted after the test,
 * and an audit outbox stand-in that records what a piece wrote.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { open, type RootDatabase } from 'lmdb';
import type { AuditActor } from '../../server/store/audit-outbox.ts';

export function tempLmdbEnv(t: { after(fn: () => Promise<void>): void }): RootDatabase {
  const dir = mkdtempSync(join(tmpdir(), 'mmgw-lmdb-'));
  const env = open({ path: dir, maxDbs: 16 });
  t.after(async () => {
    await env.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return env;
}

export interface RecordedAudit {
  who: AuditActor;
  action: string;
  target: string;
  before?: unknown;
  after?: unknown;
}

/** Stands in for AuditOutbox.put: keeps the entries in memory. */
export function recordingOutbox(): {
  put: (...a: [AuditActor, string, string, unknown?, unknown?]) => void;
  entries: RecordedAudit[];
} {
  const entries: RecordedAudit[] = [];
  return {
    entries,
    put: (who, action, target, before, after) => {
      const entry: RecordedAudit = { who, action, target };
      if (before !== undefined) entry.before = before;
      if (after !== undefined) entry.after = after;
      entries.push(entry);
    },
  };
}

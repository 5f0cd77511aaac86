/**
 * Import jobs: a device import that survives the death of the process that
 * runs it. A job writes its rows in batches (one lmdb transaction each: a
 * single transaction for a whole 200 MB file holds every dirty page in
 * memory, ~300 MB for 600k rows), and each batch also records which rows the
 * job created, the one-time secrets of the batch (sealed) and the job's
 * progress. The last transaction marks the job done and writes its audit
 * entry (audit-outbox.ts), so a finished job, its result and its audit entry
 * exist together or not at all.
 *
 * A job whose process died (same host and pid namespace: the pid is gone;
 * elsewhere: no heartbeat for 10 minutes) is rolled back by the next process that opens
 * the registry, or asks for jobs: the rows it created are removed, batch by
 * batch, and the job ends `rolled_back` with an audit entry. So after a crash
 * an import has either all its rows, with its result and audit entry, or none
 * of them; while a job runs, the rows it has written are already visible.
 *
 * On a registry on the shared state (Stores.shared, a cluster) the rows are
 * created in the shared devices table one key at a time before the batch's
 * transaction records them (import-shared.ts), so that guarantee does not
 * hold: a job whose process died keeps its rows and ends `failed`
 * (interrupted), its secrets still sealed; a rollback removes the rows it
 * recorded one key at a time.
 *
 * The secrets are kept sealed (AES-256-GCM, a Sealer from import-sealer.ts)
 * until they have been delivered once in full (the import's answer, or the
 * first fetch of the result) or for SECRETS_TTL_MS, whichever comes first.
 *
 * Layout, in the registry's `imports` database:
 *   ['job', id]             → ImportJob
 *   ['row', id, imei]       → true            (rows the job created: what a rollback removes)
 *   ['secrets', id, n]      → sealed JSON of [[imei, secret], …] (batch n)
 */
import { readlinkSync } from 'node:fs';
import { hostname } from 'node:os';
import type { Database } from 'lmdb';
import type { AuditActor, AuditOutbox } from './audit-outbox.ts';
import type { ImportMode, ImportRejection, PreparedImportRow } from './import-rows.ts';
import { createSharedRows, duplicateRow, IMPORT_IN_FLIGHT } from './import-shared.ts';
import type { DeviceRecordV1 } from './records.ts';
import type { RegistryTable } from './registry-table.ts';
import type { LmdbRegistryDatabases } from './registry-tables.ts';

export type ImportJobState = 'running' | 'done' | 'failed' | 'rolling_back' | 'rolled_back';

/** Where the one-time secrets of a job are: kept sealed, delivered (and wiped), expired, or none made. */
export type ImportSecretsState = 'sealed' | 'delivered' | 'expired' | 'none';

export interface ImportJob {
  id: string;
  state: ImportJobState;
  mode: ImportMode;
  /** SHA-256 (hex) of the file: a retry under the same id must send the same file. */
  digest: string;
  /** Data rows in the file. */
  total: number;
  written: number;
  rejectedCount: number;
  /** The first REJECTED_KEPT rejected rows, in file order. */
  rejected: ImportRejection[];
  actor: AuditActor;
  owner: { pid: number; host: string };
  /** 1, then one more each time a rolled-back or failed job is run again under its id. */
  attempt: number;
  startedAt: number;
  heartbeatAt: number;
  finishedAt?: number;
  secrets: ImportSecretsState;
  secretChunks: number;
  /** Of the secrets written, how many were generated (the others came in the file). */
  generatedSecrets?: number;
  secretsExpireAt?: number;
  secretsDeliveredAt?: number;
  /** Why a job failed or was rolled back. */
  reason?: string;
  /** failed: the error code the import answered with. */
  code?: string;
  /** What a rollback in progress ends in, so that another process can finish it. */
  closing?: { state: 'failed' | 'rolled_back'; reason: string; code?: string };
}

/** Seals a job's secrets; import-sealer.ts makes one from the credentials key. */
export interface Sealer {
  seal(plain: string, context: string): string;
  open(sealed: string, context: string): string;
}

export const REJECTED_KEPT = 1000;
export const SECRETS_TTL_MS = 24 * 3600_000;
/** Finished jobs are forgotten after this long. */
export const JOB_KEEP_MS = 30 * 86_400_000;
const STALE_HEARTBEAT_MS = 10 * 60_000;
const ROLLBACK_BATCH = 5000;

type Key = Array<string | number>;

interface Stores extends Pick<LmdbRegistryDatabases, 'devices' | 'imsis' | 'accounts'> {
  jobs: Database<unknown, Key>;
  outbox: AuditOutbox;
  now: () => number;
  /** Told the IMEIs a committed batch wrote or removed (the registry passes them on). */
  changed?: (imeis: string[]) => void;
  /**
   * A registry on the shared state: the rows go to its devices table one key
   * at a time (import-shared.ts), the job's own records stay in `jobs`.
   */
  shared?: {
    devices: RegistryTable<DeviceRecordV1>;
    /** Removes a device and its accounts; false when it was not there. */
    removeDevice(imei: string): Promise<boolean>;
  };
}

/**
 * Where pids mean the same: the host, and its pid namespace (two containers
 * on one host, sharing a data directory, may have the same host name).
 */
function pidSpace(): string {
  try {
    return `${hostname()} ${readlinkSync('/proc/self/ns/pid')}`;
  } catch {
    return hostname();
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export class ImportJobs {
  private readonly host = pidSpace();

  constructor(private readonly s: Stores) {}

  get(id: string): ImportJob | undefined {
    return this.s.jobs.get(['job', id]) as ImportJob | undefined;
  }

  /** The most recent jobs first. */
  list(limit = 100): ImportJob[] {
    const jobs: ImportJob[] = [];
    for (const { value } of this.s.jobs.getRange({ start: ['job'], end: ['job', '\uffff'], snapshot: true }))
      jobs.push(value as ImportJob);
    return jobs.sort((a, b) => b.startedAt - a.startedAt).slice(0, limit);
  }

  /** Is the process that runs the job still there? */
  isAlive(job: ImportJob): boolean {
    const fresh = this.s.now() - job.heartbeatAt < STALE_HEARTBEAT_MS;
    return job.owner.host === this.host ? fresh && pidAlive(job.owner.pid) : fresh;
  }

  /**
   * Starts a job under `id`: a new one, or a new attempt of one that failed
   * or was rolled back. A job that is done, or still running, is returned as
   * `existing` and left alone.
   */
  async begin(spec: {
    id: string;
    mode: ImportMode;
    digest: string;
    total: number;
    actor: AuditActor;
  }): Promise<{ started: ImportJob } | { existing: ImportJob }> {
    await this.recover();
    const now = this.s.now();
    return this.s.jobs.transaction(() => {
      const before = this.get(spec.id);
      if (
        before &&
        (before.state === 'done' || before.state === 'running' || before.state === 'rolling_back')
      )
        return { existing: before };
      const job: ImportJob = {
        ...spec,
        state: 'running',
        written: 0,
        rejectedCount: 0,
        rejected: [],
        owner: { pid: process.pid, host: this.host },
        attempt: (before?.attempt ?? 0) + 1,
        startedAt: now,
        heartbeatAt: now,
        secrets: 'none',
        secretChunks: 0,
      };
      this.s.jobs.put(['job', spec.id], job);
      return { started: job };
    });
  }

  /**
   * Writes one batch of new devices and records the rejections found since
   * the last batch. An IMEI that is in the registry by now (another process
   * added it) is rejected here: in valid-only mode the rest is written; in
   * all-or-nothing mode nothing of the batch is, and `conflicts` says why (the
   * caller then fails the job, which removes the earlier batches).
   */
  async writeBatch(
    id: string,
    rows: PreparedImportRow[],
    o: { mode: ImportMode; sealer: Sealer; rejected: ImportRejection[] },
  ): Promise<{ written: number; conflicts: ImportRejection[] }> {
    const { devices, imsis, jobs, shared } = this.s;
    const now = this.s.now();
    const written: string[] = [];
    // Shared state: the rows are created first, one key each; the transaction below records them.
    if (shared) this.assertRunningHere(id);
    const placed = shared ? await createSharedRows(shared.devices, rows, o.mode) : undefined;
    const outcome = await jobs.transaction(() => {
      this.assertRunningHere(id);
      const job = this.get(id) as ImportJob;
      const conflicts = placed
        ? placed.conflicts
        : rows.filter((p) => devices.doesExist(p.record.imei)).map(duplicateRow);
      const rejected = [...o.rejected, ...conflicts].sort((a, b) => (a.line ?? 0) - (b.line ?? 0));
      const kept = [...job.rejected, ...rejected.slice(0, Math.max(0, REJECTED_KEPT - job.rejected.length))];
      const next: ImportJob = {
        ...job,
        heartbeatAt: now,
        rejected: kept,
        rejectedCount: job.rejectedCount + rejected.length,
      };
      if (o.mode === 'all-or-nothing' && conflicts.length > 0 && !placed?.created.size) {
        jobs.put(['job', id], next);
        return { written: 0, conflicts };
      }
      const skip = new Set(conflicts.map((c) => c.imei));
      const secrets: Array<[string, string]> = [];
      for (const p of rows) {
        const { record } = p;
        if (placed ? !placed.created.has(record.imei) : skip.has(record.imei)) continue;
        if (!placed) {
          devices.put(record.imei, record);
          if (record.imsi) imsis.put(`${record.imsi}:${record.imei}`, true);
        }
        jobs.put(['row', id, record.imei], true);
        secrets.push([record.imei, p.secret]);
        written.push(record.imei);
      }
      if (secrets.length > 0) {
        const n = job.secretChunks;
        jobs.put(['secrets', id, n], o.sealer.seal(JSON.stringify(secrets), chunkContext(job, n)));
        next.secretChunks = n + 1;
        next.secrets = 'sealed';
      }
      next.written = job.written + secrets.length;
      jobs.put(['job', id], next);
      return { written: secrets.length, conflicts };
    });
    this.s.changed?.(written);
    if (placed?.error !== undefined) throw placed.error;
    return outcome;
  }

  private assertRunningHere(id: string): void {
    const job = this.get(id);
    if (job?.state !== 'running' || job.owner.pid !== process.pid || job.owner.host !== this.host)
      throw new Error(`import job ${id} is not running here any more`);
  }

  /** Marks the job done and writes its audit entry, in one transaction. */
  async finish(
    id: string,
    audit: { target: string; after: Record<string, unknown>; generatedSecrets: number },
  ): Promise<ImportJob> {
    const now = this.s.now();
    return this.s.jobs.transaction(() => {
      const job = this.get(id);
      if (job?.state !== 'running') throw new Error(`import job ${id} is not running`);
      const done: ImportJob = {
        ...job,
        state: 'done',
        heartbeatAt: now,
        finishedAt: now,
        generatedSecrets: audit.generatedSecrets,
        ...(job.secretChunks > 0 ? { secretsExpireAt: now + SECRETS_TTL_MS } : {}),
      };
      this.s.jobs.put(['job', id], done);
      this.s.outbox.put(job.actor, 'device.import', audit.target, undefined, audit.after, now);
      return done;
    });
  }

  /**
   * Removes every row the job wrote, in batches, and ends it `rolled_back`
   * (it died, or was given up) or `failed` (it was refused midway), with an
   * audit entry. Another process can take over a rollback whose process died.
   */
  async rollback(
    id: string,
    closing: { state: 'failed' | 'rolled_back'; reason: string; code?: string },
  ): Promise<ImportJob | undefined> {
    const { devices, imsis, accounts, jobs, shared } = this.s;
    const claimed = await jobs.transaction(() => {
      const job = this.get(id);
      if (!job) return undefined;
      const mine = job.owner.pid === process.pid && job.owner.host === this.host;
      if (job.state === 'running' && !mine && this.isAlive(job)) return undefined;
      if (job.state === 'rolling_back' && !mine && this.isAlive(job)) return undefined;
      if (job.state !== 'running' && job.state !== 'rolling_back') return undefined;
      const next: ImportJob = {
        ...job,
        state: 'rolling_back',
        owner: { pid: process.pid, host: this.host },
        heartbeatAt: this.s.now(),
        closing: job.closing ?? closing,
      };
      jobs.put(['job', id], next);
      return next;
    });
    if (!claimed) return undefined;
    let removed = 0;
    for (;;) {
      const gone: string[] = [];
      const range = { start: ['row', id], end: ['row', id, '\uffff'], limit: ROLLBACK_BATCH };
      // Shared state: the devices go first, one key each; a mark goes once its device has.
      if (shared) gone.push(...(await removeShared(shared.removeDevice, [...jobs.getKeys(range)])));
      const done = await jobs.transaction(() => {
        const keys = [...jobs.getKeys(range)];
        for (const key of keys) {
          const imei = String(key[2]);
          const raw = shared ? undefined : devices.get(imei);
          if (raw !== undefined) {
            gone.push(imei);
            if (raw.imsi) imsis.remove(`${raw.imsi}:${imei}`);
            devices.remove(imei);
            for (const k of accounts.getKeys({ start: [imei], end: [imei, '\uffff'] })) accounts.remove(k);
          }
          jobs.remove(key);
        }
        const job = this.get(id);
        if (job) jobs.put(['job', id], { ...job, heartbeatAt: this.s.now() });
        return keys.length;
      });
      this.s.changed?.(gone);
      removed += done;
      if (done < ROLLBACK_BATCH) break;
    }
    const now = this.s.now();
    return jobs.transaction(() => {
      const job = this.get(id);
      if (job?.state !== 'rolling_back') return job;
      for (const key of jobs.getKeys({ start: ['secrets', id], end: ['secrets', id, '\uffff'] }))
        jobs.remove(key);
      const end = job.closing ?? closing;
      const { closing: _c, ...rest } = job;
      const ended: ImportJob = {
        ...rest,
        state: end.state,
        written: 0,
        secrets: 'none',
        secretChunks: 0,
        heartbeatAt: now,
        finishedAt: now,
        reason: end.reason,
        ...(end.code === undefined ? {} : { code: end.code }),
      };
      jobs.put(['job', id], ended);
      this.s.outbox.put(job.actor, `device.import.${end.state}`, `import:${id}`, undefined, {
        job: id,
        mode: job.mode,
        total: job.total,
        removed,
        reason: end.reason,
      });
      return ended;
    });
  }

  /**
   * Rolls back the jobs whose process died, wipes secrets past their time
   * and forgets old jobs. Cheap when there is nothing to do.
   */
  async recover(): Promise<void> {
    const now = this.s.now();
    for (const job of this.list(Number.MAX_SAFE_INTEGER)) {
      if (job.state === 'running' && this.s.shared && !this.isAlive(job)) {
        await this.interrupted(job.id);
      } else if ((job.state === 'running' || job.state === 'rolling_back') && !this.isAlive(job)) {
        const where = `pid ${job.owner.pid} on ${job.owner.host}`;
        await this.rollback(job.id, {
          state: 'rolled_back',
          reason: `the importing process (${where}) ended before the import finished; its rows were removed`,
        });
      } else if (job.secrets === 'sealed' && (job.secretsExpireAt ?? Number.POSITIVE_INFINITY) <= now) {
        await this.wipeSecrets(job.id, 'expired');
      } else if (job.finishedAt !== undefined && job.finishedAt < now - JOB_KEEP_MS) {
        await this.s.jobs.transaction(() => {
          for (const key of this.s.jobs.getKeys({
            start: ['secrets', job.id],
            end: ['secrets', job.id, '\uffff'],
          }))
            this.s.jobs.remove(key);
          for (const key of this.s.jobs.getKeys({ start: ['row', job.id], end: ['row', job.id, '\uffff'] }))
            this.s.jobs.remove(key);
          this.s.jobs.remove(['job', job.id]);
        });
      }
    }
  }

  /**
   * Shared state: a job whose process died keeps the rows it wrote (other
   * nodes may already serve them) and ends `failed`; the secrets of the rows
   * it recorded stay sealed for SECRETS_TTL_MS. Importing the same file again
   * writes the rest and reports those rows as duplicates.
   */
  private async interrupted(id: string): Promise<void> {
    const now = this.s.now();
    await this.s.jobs.transaction(() => {
      const job = this.get(id);
      if (job?.state !== 'running' || this.isAlive(job)) return;
      const reason =
        `the importing process (pid ${job.owner.pid} on ${job.owner.host}) ended before the import finished; ` +
        `the ${job.written} rows it wrote stay: import the same file again to write the rest`;
      this.s.jobs.put(['job', id], {
        ...job,
        state: 'failed',
        heartbeatAt: now,
        finishedAt: now,
        reason,
        ...(job.secretChunks > 0 ? { secretsExpireAt: now + SECRETS_TTL_MS } : {}),
      });
      this.s.outbox.put(job.actor, 'device.import.failed', `import:${id}`, undefined, {
        job: id,
        mode: job.mode,
        total: job.total,
        written: job.written,
        reason,
      });
    });
  }

  /** The job's secrets, batch by batch (nothing once they are delivered or expired). */
  *secrets(id: string, sealer: Sealer): Generator<Array<{ imei: string; secret: string }>> {
    const job = this.get(id);
    if (job?.secrets !== 'sealed') return;
    if ((job.secretsExpireAt ?? Number.POSITIVE_INFINITY) <= this.s.now()) return;
    for (let n = 0; n < job.secretChunks; n++) {
      const sealed = this.s.jobs.get(['secrets', id, n]);
      if (typeof sealed !== 'string') continue;
      const pairs = JSON.parse(sealer.open(sealed, chunkContext(job, n))) as Array<[string, string]>;
      yield pairs.map(([imei, secret]) => ({ imei, secret }));
    }
  }

  /** Wipes the secrets of a done job: they were delivered in full, or their time is up. */
  async wipeSecrets(id: string, why: 'delivered' | 'expired'): Promise<void> {
    const now = this.s.now();
    await this.s.jobs.transaction(() => {
      const job = this.get(id);
      if (job?.secrets !== 'sealed') return;
      for (const key of this.s.jobs.getKeys({ start: ['secrets', id], end: ['secrets', id, '\uffff'] }))
        this.s.jobs.remove(key);
      this.s.jobs.put(['job', id], {
        ...job,
        secrets: why,
        ...(why === 'delivered' ? { secretsDeliveredAt: now } : {}),
      });
    });
  }
}

/** Removes the devices of rows marked ['row', id, imei], IMPORT_IN_FLIGHT at a time; the IMEIs removed. */
async function removeShared(remove: (imei: string) => Promise<boolean>, keys: Key[]): Promise<string[]> {
  const gone: string[] = [];
  for (let at = 0; at < keys.length; at += IMPORT_IN_FLIGHT) {
    const imeis = keys.slice(at, at + IMPORT_IN_FLIGHT).map((key) => String(key[2]));
    const removed = await Promise.all(imeis.map(remove));
    gone.push(...imeis.filter((_, i) => removed[i]));
  }
  return gone;
}

/** Binds a sealed batch to its job, attempt and place: a batch copied elsewhere does not open. */
function chunkContext(job: ImportJob, n: number): string {
  return `import:${job.id}:${job.attempt}:${n}`;
}

/**
 * A device import from CSV, for the CLI and the admin API alike, with memory
 * bounded whatever the file's size: the file is read as a stream twice.
 *
 *   1. check: every row is read (readDeviceCsvStream) and screened
 *      (ImportScreen: the row, its references, repeats, the registry), the
 *      rows counted against the row cap and the bytes hashed. A dry run ends
 *      here; so does an all-or-nothing import with a rejected row.
 *   2. write: an import job (import-jobs.ts) reads the file again and writes
 *      the rows that pass, in batches; the file must hash the same as in
 *      pass 1. Its last transaction marks it done with its audit entry.
 *
 * What is kept meanwhile: an ImeiSet of the rows seen (12 bytes a row), one
 * batch of rows, and the first REJECTED_KEPT rejections (an answer gives
 * those and the count).
 *
 * A job id given by the caller (the API's Idempotency-Key, the CLI's
 * --job-id) makes a retry safe: the same file under the id of a job that is
 * done answers that job's result again, instead of refusing every row as a
 * duplicate; a job that was rolled back or failed runs again.
 */
import { createHash, type Hash, randomBytes } from 'node:crypto';
import { GatewayError } from '../../device-protocol/errors.ts';
import type { AuditActor } from './audit-outbox.ts';
import { ImportScreen, readDeviceCsvStream } from './device-csv.ts';
import { type ImportJob, REJECTED_KEPT, type Sealer } from './import-jobs.ts';
import {
  type ImportMode,
  type ImportRejection,
  type ImportRow,
  importRowProblem,
  prepareImportRow,
} from './import-rows.ts';
import type { Registry } from './registry.ts';

export const DEFAULT_IMPORT_MAX_ROWS = 1_000_000;
/** Rows per write transaction: a batch's garbage is what the heap grows by, 1,000 keeps it small. */
const BATCH_ROWS = 1000;

/** What a caller may name a job: letters, digits and . _ : - (it is also the job's id). */
export const IMPORT_JOB_ID = /^[A-Za-z0-9._:-]{1,64}$/;

export interface DeviceImportOptions {
  mode: ImportMode;
  dryRun?: boolean;
  /** The file's size in bytes when known: the rows are then counted ahead (ImeiSet.reserve). */
  sizeHint?: number;
  /** Rows (not counting the header) an import may have. Default DEFAULT_IMPORT_MAX_ROWS. */
  maxRows?: number;
  /** Where the limit is set, for the error that names it. */
  maxRowsSetting?: string;
  /** The caller's id for the job (a retry under it is safe); a fresh one when absent. */
  jobId?: string;
  actor: AuditActor;
  /** How a rejection of a repeated IMEI names the input ("file", "import"). */
  source: string;
  /** A further check of each row (the admin API's references). */
  refProblem?(row: ImportRow): ImportRejection | undefined;
  /** Seals the one-time secrets of the job; needed unless it is a dry run. */
  sealer?: Sealer;
  batchRows?: number;
  /** Called with the job's id once it has started writing. */
  onJob?(id: string): void;
  /** Called as rows are checked (pass 1) and after each batch is committed (pass 2). */
  onProgress?(p: { phase: 'checking' | 'writing'; rows: number; bytes: number; total?: number }): void;
}

export interface ImportOutcome {
  mode: ImportMode;
  dryRun: boolean;
  total: number;
  written: number;
  rejectedCount: number;
  /** The first REJECTED_KEPT rejected rows, in file order. */
  rejected: ImportRejection[];
  /** The job of an import that wrote (or tried to). */
  job?: ImportJob;
  /** True when the answer is a finished job's, found under the id given. */
  replayed?: boolean;
}

/** The file, read once for each pass: the first pass may read a stream that a caller copies as it goes. */
export interface ImportInput {
  first: AsyncIterable<Uint8Array | string>;
  again(): AsyncIterable<Uint8Array | string>;
}

async function* hashing(chunks: AsyncIterable<Uint8Array | string>, hash: Hash, count: { bytes: number }) {
  for await (const chunk of chunks) {
    hash.update(chunk);
    count.bytes += typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length;
    yield chunk;
  }
}

/** The outcome a job stands for (a replay, or the import that made it). */
export function jobOutcome(job: ImportJob, replayed = false): ImportOutcome {
  return {
    mode: job.mode,
    dryRun: false,
    total: job.total,
    written: job.written,
    rejectedCount: job.rejectedCount,
    rejected: job.rejected,
    job,
    ...(replayed ? { replayed: true } : {}),
  };
}

export function newImportJobId(): string {
  return `imp-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
}

class Rejections {
  count = 0;
  readonly kept: ImportRejection[] = [];
  add(r: ImportRejection): void {
    this.count++;
    if (this.kept.length < REJECTED_KEPT) this.kept.push(r);
  }
}

export async function importDeviceCsv(
  registry: Registry,
  input: ImportInput,
  o: DeviceImportOptions,
): Promise<ImportOutcome> {
  const maxRows = o.maxRows ?? DEFAULT_IMPORT_MAX_ROWS;
  const dryRun = o.dryRun ?? false;
  if (o.jobId !== undefined && !IMPORT_JOB_ID.test(o.jobId))
    throw new GatewayError('request.bad_input', 'a job id is 1-64 letters, digits or . _ : -', {
      field: 'jobId',
    });
  const id = o.jobId ?? newImportJobId();

  if (!dryRun && o.jobId !== undefined) {
    await registry.imports.recover();
    const before = registry.imports.get(id);
    if (before && before.state !== 'failed' && before.state !== 'rolled_back') {
      const hash = createHash('sha256');
      for await (const _ of hashing(input.first, hash, { bytes: 0 }));
      if (before.state !== 'done')
        throw new GatewayError('api.conflict', `import job ${id} is still running: fetch its result later`, {
          field: 'jobId',
        });
      if (hash.digest('hex') !== before.digest)
        throw new GatewayError('api.conflict', `import job ${id} was made from another file`, {
          field: 'jobId',
        });
      return jobOutcome(before, true);
    }
  }

  // Pass 1: check every row, count them, hash the file.
  const hash = createHash('sha256');
  const read = { bytes: 0 };
  const screen = new ImportScreen(importRowProblem, {
    exists: (imei) => registry.hasDevice(imei),
    ...(o.refProblem ? { refProblem: o.refProblem } : {}),
    source: o.source,
  });
  const checked = new Rejections();
  let total = 0;
  let reserved = o.sizeHint === undefined;
  for await (const batch of readDeviceCsvStream(hashing(input.first, hash, read))) {
    if (!reserved && total + batch.length >= 100) {
      // The rows so far tell the size of a row, and so how many the file holds.
      reserved = true;
      const perRow = read.bytes / (total + batch.length);
      screen.seen.reserve(Math.min(maxRows, Math.ceil(((o.sizeHint ?? 0) / perRow) * 1.05)));
    }
    for (const item of batch) {
      if (++total > maxRows) throw tooManyRows(maxRows, o.maxRowsSetting);
      const rejection = 'rejected' in item ? item.rejected : screen.check(item.row);
      if (rejection) checked.add(rejection);
    }
    o.onProgress?.({ phase: 'checking', rows: total, bytes: read.bytes });
  }
  const digest = hash.digest('hex');
  const screened: ImportOutcome = {
    mode: o.mode,
    dryRun,
    total,
    written: o.mode === 'all-or-nothing' && checked.count > 0 ? 0 : total - checked.count,
    rejectedCount: checked.count,
    rejected: checked.kept,
  };
  if (dryRun || (o.mode === 'all-or-nothing' && checked.count > 0))
    return dryRun ? screened : { ...screened, written: 0 };

  // Pass 2: write what passes, as a job.
  const sealer = o.sealer;
  if (!sealer) throw new GatewayError('internal', 'an import that writes needs a sealer for its secrets');
  const begun = await registry.imports.begin({ id, mode: o.mode, digest, total, actor: o.actor });
  if ('existing' in begun)
    throw new GatewayError('api.conflict', `import job ${id} is already running or done`, { field: 'jobId' });
  o.onJob?.(id);
  try {
    return await writePass(registry, input, o, { id, digest, total, sealer, screen });
  } catch (err) {
    await registry.imports
      .rollback(id, {
        state: 'failed',
        reason: err instanceof Error ? err.message : String(err),
        code: (err as GatewayError).code ?? 'internal',
      })
      .catch(() => undefined);
    throw err;
  }
}

async function writePass(
  registry: Registry,
  input: ImportInput,
  o: DeviceImportOptions,
  job: { id: string; digest: string; total: number; sealer: Sealer; screen: ImportScreen },
): Promise<ImportOutcome> {
  const { id } = job;
  const batchRows = o.batchRows ?? BATCH_ROWS;
  const hash = createHash('sha256');
  const read = { bytes: 0 };
  // The first pass's IMEI set, emptied: the same room, no second one.
  const screen = new ImportScreen(
    importRowProblem,
    {
      exists: (imei) => registry.hasDevice(imei),
      ...(o.refProblem ? { refProblem: o.refProblem } : {}),
      source: o.source,
    },
    job.screen.seen,
  );
  let rows: ImportRow[] = [];
  let pending: ImportRejection[] = [];
  let total = 0;
  let written = 0;
  let generated = 0;
  const imeis: string[] = [];
  /** Writes the batch; in all-or-nothing mode, false once a row is refused (the job then fails). */
  const flush = async (): Promise<boolean> => {
    if (o.mode === 'all-or-nothing' && pending.length > 0) return false;
    if (rows.length === 0 && pending.length === 0) return true;
    const now = Date.now();
    const prepared = rows.map((row) => prepareImportRow(row, now));
    const r = await registry.imports.writeBatch(id, prepared, {
      mode: o.mode,
      sealer: job.sealer,
      rejected: pending,
    });
    const refused = new Set(r.conflicts.map((c) => c.imei));
    rows.forEach((row) => {
      if (refused.has(row.imei)) return;
      if (imeis.length < 1000) imeis.push(row.imei);
      if (!row.secret) generated++;
    });
    written += r.written;
    rows = [];
    pending = [];
    o.onProgress?.({ phase: 'writing', rows: written, bytes: read.bytes, total: job.total });
    return !(o.mode === 'all-or-nothing' && r.conflicts.length > 0);
  };

  let refused = false;
  reading: for await (const batch of readDeviceCsvStream(hashing(input.again(), hash, read))) {
    for (const item of batch) {
      total++;
      const rejection = 'rejected' in item ? item.rejected : screen.check(item.row);
      if (rejection) pending.push(rejection);
      else if ('row' in item) rows.push(item.row);
      // Rejections count towards a batch too: a file of refused rows must not pile them up.
      if (rows.length + pending.length >= batchRows || (o.mode === 'all-or-nothing' && pending.length > 0)) {
        if (!(await flush())) {
          refused = true;
          break reading;
        }
      }
    }
  }
  if (!refused && !(await flush())) refused = true;
  if (refused) {
    // The registry changed between the passes (another process added one of the IMEIs).
    if (pending.length > 0)
      await registry.imports.writeBatch(id, [], { mode: o.mode, sealer: job.sealer, rejected: pending });
    const failed = await registry.imports.rollback(id, {
      state: 'failed',
      reason: 'a row was refused while writing (the registry changed since the check); nothing was written',
      code: 'registry.import_rejected',
    });
    if (!failed) throw new GatewayError('internal', `import job ${id} could not be rolled back`);
    return jobOutcome(failed);
  }
  if (hash.digest('hex') !== job.digest || total !== job.total)
    throw new GatewayError(
      'registry.import_rejected',
      'the file changed while it was imported; nothing was written',
    );
  const done = await registry.imports.finish(id, {
    generatedSecrets: generated,
    target: `import:${id}`,
    after: {
      job: id,
      mode: o.mode,
      total: job.total,
      written,
      rejected: registry.imports.get(id)?.rejectedCount ?? 0,
      imeis,
    },
  });
  return jobOutcome(done);
}

function tooManyRows(max: number, setting = 'the import row limit'): GatewayError {
  return new GatewayError(
    'api.too_large',
    `the import has more than ${max.toLocaleString('en')} rows (${setting}); split the file`,
    { field: 'body' },
  );
}

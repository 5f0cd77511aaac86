/**
 * Device imports from CSV (server/store/device-import.ts does the work): the
 * body is read as a stream, copied to a spool file in the data directory
 * (0600, removed after) during the check so that the write can read it again,
 * and never held whole in memory. An import that writes is a job: its answer
 * (with the devices' one-time secrets, kept sealed until delivered once in
 * full) can be fetched again from GET /devices/imports/{id}, after a crash
 * too, and an `Idempotency-Key` names the job so that a retry answers it
 * instead of refusing every row as a duplicate.
 */
import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, readdir, rm, stat } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import { join } from 'node:path';
import { GatewayError } from '../../../device-protocol/errors.ts';
import {
  DEVICE_CSV_HEADER_HELP,
  DeviceCsvError,
  importDeviceCsv,
  type ImportJob,
  type ImportOutcome,
  type ImportRejection,
  type ImportRow,
} from '../../../server/index.ts';
import { type ApiContext, failure, json, route, STAFF } from '../context.ts';
import { badInput, sendApiError, sendJson } from '../http-util.ts';
import * as S from '../schemas.ts';
import { REF_FIELDS } from './devices.ts';

const IMPORT_MAX_BYTES = 256 * 1024 * 1024;
/** Spool files older than this are what a crashed import left behind. */
const SPOOL_STALE_MS = 86_400_000;

/** The body, failing with api.too_large once it passes `max` bytes. */
async function* bodyUpTo(req: AsyncIterable<unknown>, max: number): AsyncGenerator<Uint8Array> {
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > max) throw new GatewayError('api.too_large', `the body is larger than ${max} bytes`);
    yield chunk as Buffer;
  }
}

/** A file in the spool directory that the body is copied into as it is read. */
async function spool(dir: string) {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const path = join(dir, `import-${process.pid}-${randomBytes(6).toString('hex')}.csv`);
  const file = await open(path, 'wx', 0o600);
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await file.close();
  };
  return {
    path,
    async *copy(chunks: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
      try {
        for await (const chunk of chunks) {
          await file.write(chunk);
          yield chunk;
        }
      } finally {
        await close();
      }
    },
    async remove() {
      await close();
      await rm(path, { force: true });
    },
  };
}

/** Removes what imports of a crashed process left in the spool directory. */
export async function sweepSpool(dir: string, now = Date.now()): Promise<void> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return;
  }
  for (const name of names) {
    if (!/^import-\d+-[0-9a-f]+\.csv$/.test(name)) continue;
    const path = join(dir, name);
    const s = await stat(path).catch(() => undefined);
    if (s && now - s.mtimeMs > SPOOL_STALE_MS) await rm(path, { force: true });
  }
}

async function write(res: ServerResponse, text: string): Promise<void> {
  if (res.write(text)) return;
  await new Promise<void>((resolve, reject) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', gone);
      resolve();
    };
    const gone = () => {
      res.off('drain', done);
      reject(new Error('the client went away'));
    };
    res.once('drain', done);
    res.once('close', gone);
  });
}

/**
 * Wipes of delivered secrets under way, by job id: a retry that comes right
 * after the answer (the client read it all) waits for the wipe, so it sees
 * `delivered`, never `sealed` with the secrets already gone.
 */
const wiping = new Map<string, Promise<void>>();

/** Waits for a wipe of the job's delivered secrets that is still under way. */
async function wipeSettled(jobId: string | undefined): Promise<void> {
  if (jobId !== undefined) await wiping.get(jobId);
}

/**
 * Answers `body` with the job's secrets as its `secrets` member, streamed
 * batch by batch (a 600k-device import has 40 MB of them); once the whole
 * answer is handed to the network, the secrets are wiped: delivered.
 */
async function sendWithSecrets(
  ctx: ApiContext,
  status: number,
  body: Record<string, unknown>,
  job: ImportJob | undefined,
): Promise<void> {
  const { registry, importSealer } = ctx.services;
  const { res } = ctx;
  const sealed = job?.secrets === 'sealed' && importSealer !== undefined;
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
  const head = JSON.stringify(body);
  let chunk = `${head.slice(0, -1)}${head === '{}' ? '' : ','}"secrets":[`;
  let first = true;
  if (sealed && job) {
    for (const batch of registry.imports.secrets(job.id, importSealer())) {
      for (const s of batch) {
        chunk += (first ? '' : ',') + JSON.stringify({ imei: s.imei, secret: s.secret });
        first = false;
      }
      if (chunk.length > 64 * 1024) {
        await write(res, chunk);
        chunk = '';
      }
    }
    res.once('finish', () => {
      const wipe = registry.imports
        .wipeSecrets(job.id, 'delivered')
        .catch((err) => {
          ctx.services.logger.warn({ err, job: job.id }, 'could not wipe the delivered secrets of an import');
        })
        .finally(() => {
          if (wiping.get(job.id) === wipe) wiping.delete(job.id);
        });
      wiping.set(job.id, wipe);
    });
  }
  res.end(`${chunk}]}`);
}

function resultView(o: ImportOutcome): Record<string, unknown> {
  const { job } = o;
  return {
    mode: o.mode,
    dryRun: o.dryRun,
    total: o.total,
    // A dry run writes nothing: what it would write is its own field.
    written: o.dryRun ? 0 : o.written,
    ...(o.dryRun ? { wouldWrite: o.written } : {}),
    rejectedCount: o.rejectedCount,
    rejected: o.rejected,
    ...(job ? { job: job.id, secretsState: job.secrets } : {}),
    ...(job?.secretsExpireAt === undefined ? {} : { secretsExpireAt: job.secretsExpireAt }),
    ...(o.replayed ? { replayed: true } : {}),
  };
}

function jobView(job: ImportJob): Record<string, unknown> {
  return {
    id: job.id,
    state: job.state,
    mode: job.mode,
    total: job.total,
    written: job.written,
    rejectedCount: job.rejectedCount,
    actor: job.actor.actor,
    attempt: job.attempt,
    startedAt: job.startedAt,
    ...(job.finishedAt === undefined ? {} : { finishedAt: job.finishedAt }),
    ...(job.reason === undefined ? {} : { reason: job.reason }),
    ...(job.code === undefined ? {} : { code: job.code }),
    secretsState: job.secrets,
    ...(job.secretsExpireAt === undefined ? {} : { secretsExpireAt: job.secretsExpireAt }),
    ...(job.secretsDeliveredAt === undefined ? {} : { secretsDeliveredAt: job.secretsDeliveredAt }),
  };
}

/** References a row makes must name existing reference data (read once per import). */
function refChecker(ctx: ApiContext): (row: ImportRow) => ImportRejection | undefined {
  const { registry } = ctx.services;
  const known = new Map<string, Set<string>>();
  for (const [, kind] of REF_FIELDS) known.set(kind, new Set(registry.listRefs(kind).map((r) => r.id)));
  // Called once a row: it allocates nothing unless the row is refused.
  return (row) => {
    for (const [field, kind] of REF_FIELDS) {
      const value = field === 'serviceProfile' ? row.profile : row[field];
      if (value === undefined || known.get(kind)?.has(value)) continue;
      return {
        line: row.line,
        imei: row.imei,
        code: 'registry.invalid_field' as const,
        reason: `${field} ${value} is not defined (see /${kind})`,
        field,
      };
    }
    return undefined;
  };
}

async function importDevices(
  ctx: ApiContext,
  q: ReturnType<typeof S.ImportQuery.parse>,
  jobId: string | undefined,
): Promise<void> {
  const { registry, logger, importSealer, spoolDir, importMaxRows, drainAudit } = ctx.services;
  await wipeSettled(jobId);
  const dryRun = q.dryRun === 'true';
  const declared = Number(ctx.req.headers['content-length'] ?? Number.NaN);
  if (declared > IMPORT_MAX_BYTES)
    throw new GatewayError('api.too_large', `the body is larger than ${IMPORT_MAX_BYTES} bytes`);
  if (!dryRun && (!importSealer || !spoolDir))
    throw new GatewayError('request.unavailable', 'this admin node cannot keep import results', {
      retryable: true,
    });
  const body = bodyUpTo(ctx.req, IMPORT_MAX_BYTES);
  const copy = dryRun || !spoolDir ? undefined : await spool(spoolDir);
  let outcome: ImportOutcome;
  try {
    outcome = await importDeviceCsv(
      registry,
      {
        first: copy ? copy.copy(body) : body,
        again: () => createReadStream(copy?.path ?? ''),
      },
      {
        mode: q.mode,
        dryRun,
        maxRows: importMaxRows,
        maxRowsSetting: 'admin.importMaxRows',
        ...(Number.isFinite(declared) ? { sizeHint: declared } : {}),
        ...(jobId === undefined ? {} : { jobId }),
        actor: { actor: ctx.user.name, role: ctx.user.role, address: ctx.address },
        source: 'import',
        refProblem: refChecker(ctx),
        ...(importSealer && !dryRun ? { sealer: importSealer() } : {}),
      },
    );
  } catch (err) {
    // The rest of a refused upload is not read: close the connection after the answer.
    if (!ctx.req.complete) {
      ctx.res.setHeader('connection', 'close');
      ctx.req.resume();
    }
    if (err instanceof DeviceCsvError) {
      const { line, message, field } = err.problem;
      throw badInput(line === undefined ? `the CSV is empty: ${message}` : `line ${line}: ${message}`, field);
    }
    if ((err as GatewayError).code === 'request.bad_input')
      throw badInput((err as Error).message, 'Idempotency-Key');
    if ((err as GatewayError).code === 'api.conflict')
      throw new GatewayError('api.conflict', (err as Error).message, { field: 'Idempotency-Key' });
    throw err;
  } finally {
    await copy?.remove();
  }
  if (outcome.job) await drainAudit();
  const result = resultView(outcome);
  const refused =
    !dryRun && outcome.written === 0 && q.mode === 'all-or-nothing' && outcome.rejectedCount > 0;
  if (refused) {
    const err = new GatewayError(
      'registry.import_rejected',
      `${outcome.rejectedCount} rows rejected; nothing was written`,
    );
    sendApiError(ctx.res, err, logger, { result: { ...result, secrets: [] } });
    return;
  }
  await sendWithSecrets(ctx, 200, result, outcome.job);
}

export const importRoutes = [
  route({
    method: 'POST',
    path: '/devices/import',
    roles: STAFF,
    summary:
      `Import devices from CSV (audited). Header: ${DEVICE_CSV_HEADER_HELP}. ` +
      '`dryRun=true` writes nothing and returns the rejected rows with line numbers. all-or-nothing writes nothing if any row is rejected (then 422 registry.import_rejected unless dryRun); valid-only writes the good rows. ' +
      'An import that writes is a job (`job` in the answer, GET /devices/imports/{id}); its secrets are in this answer, and kept sealed until delivered once in full, or 24 h. ' +
      'With an Idempotency-Key, a retry of the same file answers the same job instead of refusing every row as a duplicate. At most admin.importMaxRows rows (1,000,000), 256 MiB',
    query: S.ImportQuery,
    headers: {
      'Idempotency-Key': {
        description:
          'Names the import job: the same file sent again under the key answers the finished job (replayed: true); another file under it is 409',
        schema: S.ImportJobId.optional(),
      },
    },
    rawBody: 'text/csv',
    responses: {
      '200': json(S.ImportResult),
      '409': failure(
        'The Idempotency-Key names a job still running, or made from another file (api.conflict)',
      ),
      '413': failure('Body larger than 256 MiB, or more rows than admin.importMaxRows (api.too_large)'),
      '422': json(S.ImportRejectedBody, 'all-or-nothing with rejected rows: nothing written'),
    },
    handle: (ctx) => importDevices(ctx, ctx.query, ctx.headers['Idempotency-Key']),
  }),
  route({
    method: 'GET',
    path: '/devices/imports',
    roles: STAFF,
    summary:
      'Import jobs of this admin node, newest first (kept 30 days); a job whose process died is rolled back and listed as rolled_back (on a cluster registry: failed, its rows kept)',
    responses: { '200': json(S.ImportJobList) },
    async handle({ res, services: { registry } }) {
      await registry.imports.recover();
      sendJson(res, 200, { items: registry.imports.list(100).map(jobView) });
    },
  }),
  route({
    method: 'GET',
    path: '/devices/imports/{id}',
    roles: STAFF,
    summary:
      "An import job's result, also after the import's answer was lost: its rejected rows and, the first time in full within 24 h, its devices' one-time secrets (then wiped)",
    params: { id: { description: 'Import job id', schema: S.ImportJobId } },
    responses: { '200': json(S.ImportJobResult) },
    async handle(ctx) {
      const { registry } = ctx.services;
      await registry.imports.recover();
      await wipeSettled(ctx.params.id);
      const job = registry.imports.get(ctx.params.id);
      if (!job)
        throw new GatewayError('registry.not_found', `no import job ${ctx.params.id}`, { field: 'id' });
      await sendWithSecrets(ctx, 200, { ...jobView(job), rejected: job.rejected }, job);
    },
  }),
];

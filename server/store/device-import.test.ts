import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { GatewayError } from '../../device-protocol/errors.ts';
import { DeviceCsvError } from './device-csv.ts';
import { type DeviceImportOptions, importDeviceCsv } from './device-import.ts';
import { REJECTED_KEPT } from './import-jobs.ts';
import { Registry } from './registry.ts';
import { fileImei, testSealer } from '../../testing/index.ts';

const sealer = testSealer;

async function open(t: { after(fn: () => void | Promise<void>): void }) {
  const dir = mkdtempSync(join(tmpdir(), 'mmgw-device-import-'));
  const registry = await Registry.open(dir);
  t.after(async () => {
    await registry.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return registry;
}

/** A file as chunks of 5 characters, read again as often as asked. */
function input(text: string, again: () => string = () => text) {
  const chunks = async function* (s: string) {
    for (let i = 0; i < s.length; i += 5) yield s.slice(i, i + 5);
  };
  return { first: chunks(text), again: () => chunks(again()) };
}

const actor = { actor: 'cli:test', role: 'cli' };
const base = (o: Partial<DeviceImportOptions> = {}): DeviceImportOptions => ({
  mode: 'valid-only',
  actor,
  source: 'file',
  sealer,
  ...o,
});

const A = fileImei(1);
const B = fileImei(2);
const C = fileImei(3);
const csv = (...rows: string[]) => ['imei,operator', ...rows].join('\n') + '\n';

test('a dry run checks every row and writes nothing; rejections come in file order with their lines', async (t) => {
  const registry = await open(t);
  await registry.addDevice({ imei: C, operator: 'op' });
  const out = await importDeviceCsv(
    registry,
    input(csv(`${A},op`, '490154203237519,op', `${A},op`, `${C},op`, 'a,b,c', `${B},op`)),
    base({ dryRun: true }),
  );
  assert.deepEqual(
    { total: out.total, written: out.written, rejectedCount: out.rejectedCount, job: out.job },
    { total: 6, written: 2, rejectedCount: 4, job: undefined },
  );
  assert.deepEqual(
    out.rejected.map((r) => [r.line, r.code]),
    [
      [3, 'registry.invalid_imei'],
      [4, 'registry.duplicate'],
      [5, 'registry.duplicate'],
      [6, 'registry.invalid_field'],
    ],
  );
  assert.match(out.rejected[1]?.reason ?? '', /appears twice in the file \(first on line 2\)/);
  assert.equal(registry.countDevices(), 1);
  assert.deepEqual(registry.imports.list(), []);
});

test('valid-only writes the good rows as a job: done, its secrets sealed per batch, its audit entry beside it', async (t) => {
  const registry = await open(t);
  const jobs: string[] = [];
  const progress: number[] = [];
  const out = await importDeviceCsv(
    registry,
    input(csv(`${A},op`, 'bad,op', `${B},op`, `${C},op`)),
    base({
      batchRows: 2,
      onJob: (id) => jobs.push(id),
      onProgress: (p) => p.phase === 'writing' && progress.push(p.rows),
    }),
  );
  assert.equal(out.written, 3);
  assert.equal(out.rejectedCount, 1);
  const job = out.job;
  assert.ok(job);
  assert.deepEqual(jobs, [job.id]);
  assert.match(job.id, /^imp-/);
  assert.equal(job.state, 'done');
  assert.equal(job.secretChunks, 2, 'one sealed chunk per batch');
  assert.deepEqual(progress, [1, 3], 'a rejection counts towards a batch');
  const secrets = [...registry.imports.secrets(job.id, sealer)].flat();
  assert.deepEqual(
    secrets.map((s) => s.imei),
    [A, B, C],
  );
  for (const s of secrets) assert.equal(registry.authenticate(s.imei, s.secret).imei, s.imei);
  const audit = registry.auditOutbox.list();
  assert.equal(audit.length, 1);
  assert.deepEqual(
    { action: audit[0]?.action, target: audit[0]?.target, actor: audit[0]?.actor },
    { action: 'device.import', target: `import:${job.id}`, actor: 'cli:test' },
  );
  assert.deepEqual(audit[0]?.after, {
    job: job.id,
    mode: 'valid-only',
    total: 4,
    written: 3,
    rejected: 1,
    imeis: [A, B, C],
  });
});

test('all-or-nothing with a rejected row writes nothing and starts no job', async (t) => {
  const registry = await open(t);
  const out = await importDeviceCsv(
    registry,
    input(csv(`${A},op`, `${B},op op`)),
    base({ mode: 'all-or-nothing' }),
  );
  assert.equal(out.written, 0);
  assert.equal(out.rejectedCount, 1);
  assert.equal(out.job, undefined);
  assert.equal(registry.countDevices(), 0);
  assert.deepEqual(registry.auditOutbox.list(), []);
});

test('more rows than the cap: api.too_large naming the cap, and nothing written', async (t) => {
  const registry = await open(t);
  await assert.rejects(
    importDeviceCsv(
      registry,
      input(csv(`${A},op`, `${B},op`, `${C},op`)),
      base({ maxRows: 2, maxRowsSetting: 'admin.importMaxRows' }),
    ),
    (err: GatewayError) =>
      err.code === 'api.too_large' && /more than 2 rows \(admin\.importMaxRows\)/.test(err.message),
  );
  assert.equal(registry.countDevices(), 0);
  assert.deepEqual(registry.imports.list(), []);
});

test('a retry under the job id answers the finished job; another file under it is a conflict', async (t) => {
  const registry = await open(t);
  const text = csv(`${A},op`, `${B},op`);
  const first = await importDeviceCsv(registry, input(text), base({ jobId: 'batch-7' }));
  assert.equal(first.job?.id, 'batch-7');
  const again = await importDeviceCsv(registry, input(text), base({ jobId: 'batch-7' }));
  assert.equal(again.replayed, true);
  assert.equal(again.written, 2);
  assert.equal(again.rejectedCount, 0, 'no row refused as a duplicate of itself');
  assert.equal(registry.auditOutbox.list().length, 1, 'one import, one audit entry');
  await assert.rejects(
    importDeviceCsv(registry, input(csv(`${C},op`)), base({ jobId: 'batch-7' })),
    (err: GatewayError) => err.code === 'api.conflict' && err.field === 'jobId',
  );
  await assert.rejects(
    importDeviceCsv(registry, input(text), base({ jobId: 'no spaces' })),
    (err: GatewayError) => err.code === 'request.bad_input' && err.field === 'jobId',
  );
  // Without the id, the same file is a new import whose rows are all duplicates.
  const plain = await importDeviceCsv(registry, input(text), base());
  assert.equal(plain.written, 0);
  assert.equal(plain.rejectedCount, 2);
});

test('all-or-nothing: a row taken by someone else between the passes fails the job and removes its batches', async (t) => {
  const registry = await open(t);
  const rows = Array.from({ length: 7 }, (_, i) => `${fileImei(10 + i)},op`);
  const text = csv(...rows);
  const out = await importDeviceCsv(
    registry,
    input(text, () => {
      // Another process adds the sixth device after the check.
      void registry.addDevice({ imei: fileImei(15), operator: 'other' });
      return text;
    }),
    base({ mode: 'all-or-nothing', batchRows: 2 }),
  );
  assert.equal(out.written, 0);
  assert.equal(out.job?.state, 'failed');
  assert.equal(out.job?.code, 'registry.import_rejected');
  assert.deepEqual(
    out.rejected.map((r) => [r.line, r.imei, r.code]),
    [[7, fileImei(15), 'registry.duplicate']],
  );
  assert.deepEqual(
    [...registry.iterateDevices()].map((d) => d.imei),
    [fileImei(15)],
    'the batches written before are gone',
  );
  assert.deepEqual(
    registry.auditOutbox.list().map((e) => e.action),
    ['device.import.failed'],
  );
});

test('a file that changes between the passes is refused and nothing stays written', async (t) => {
  const registry = await open(t);
  const text = csv(`${A},op`, `${B},op`, `${C},op`);
  await assert.rejects(
    importDeviceCsv(
      registry,
      input(text, () => text.replace(`${C},op`, `${C},other`)),
      base({ batchRows: 1 }),
    ),
    (err: GatewayError) => err.code === 'registry.import_rejected' && /changed/.test(err.message),
  );
  assert.equal(registry.countDevices(), 0);
  assert.equal(registry.imports.list()[0]?.state, 'failed');
});

test('only the first rejections are kept, with the count of all', async (t) => {
  const registry = await open(t);
  const rows = Array.from({ length: REJECTED_KEPT + 5 }, () => 'x,op');
  const out = await importDeviceCsv(registry, input(csv(...rows)), base({ dryRun: true }));
  assert.equal(out.rejectedCount, REJECTED_KEPT + 5);
  assert.equal(out.rejected.length, REJECTED_KEPT);
  assert.equal(out.rejected[0]?.line, 2);
});

test('a file that cannot be imported at all throws DeviceCsvError', async (t) => {
  const registry = await open(t);
  await assert.rejects(importDeviceCsv(registry, input('imei,colour\n'), base()), DeviceCsvError);
  await assert.rejects(importDeviceCsv(registry, input(''), base({ dryRun: true })), DeviceCsvError);
});

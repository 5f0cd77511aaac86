import assert from 'node:assert/strict';
import { createReadStream, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { importDeviceCsv } from '../../server/store/device-import.ts';
import { importResultSealer } from '../../server/store/import-sealer.ts';
import { Registry } from '../../server/store/registry.ts';
import { fileImei, runAndKill, writeDeviceCsvFile } from '../../testing/index.ts';

/**
 * kill -9 of a process in the middle of a 100,000-row import job (issue #11
 * item 9: the rows stayed, the answer with the one-time secrets was lost, no
 * audit entry was written, and a retry refused every row as a duplicate).
 * After the crash the registry holds all of the job's rows with its result and
 * audit entry, or none of them; the result can be fetched; a retry under the
 * same job id does the import or answers the finished one.
 */
const ROWS = 100_000;

async function setUp(t: { after(fn: () => void): void }) {
  const dir = mkdtempSync(join(tmpdir(), 'mmgw-import-crash-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'devices.csv');
  await writeDeviceCsvFile(file, { rows: ROWS });
  return { data: join(dir, 'data'), file };
}

function retry(registry: Registry, data: string, file: string, jobId: string) {
  return importDeviceCsv(
    registry,
    { first: createReadStream(file), again: () => createReadStream(file) },
    {
      mode: 'all-or-nothing',
      jobId,
      actor: { actor: 'cli:retry', role: 'cli' },
      source: 'file',
      sealer: importResultSealer({ dataDir: data }),
    },
  );
}

test('killed while writing: reopening removes the rows written so far; the job says so; a retry imports it all', async (t) => {
  const { data, file } = await setUp(t);
  const lines = await runAndKill(
    ['csv', data, file, 'all-or-nothing', 'crash-1'],
    (l) => l === 'written 30000',
  );
  assert.ok(lines.includes('job crash-1'));
  assert.ok(!lines.some((l) => l.startsWith('finished')), 'killed before the job finished');

  const registry = await Registry.open(data);
  t.after(() => registry.close());
  assert.equal(registry.countDevices(), 0, 'none of the rows is left');
  const job = registry.imports.get('crash-1');
  assert.equal(job?.state, 'rolled_back');
  assert.equal(job?.written, 0);
  assert.match(job?.reason ?? '', /ended before the import finished/);
  const audit = registry.auditOutbox.list();
  assert.deepEqual(
    audit.map((e) => [e.action, e.target, e.actor]),
    [['device.import.rolled_back', 'import:crash-1', 'cli:crash-test']],
  );
  assert.ok(((audit[0]?.after as { removed?: number } | undefined)?.removed ?? 0) >= 30_000);

  const again = await retry(registry, data, file, 'crash-1');
  assert.equal(again.job?.state, 'done');
  assert.equal(again.job?.attempt, 2);
  assert.equal(again.written, ROWS);
  assert.equal(registry.countDevices(), ROWS);
});

test('killed after the job finished, before anyone saw the answer: rows, result, secrets and audit entry are there', async (t) => {
  const { data, file } = await setUp(t);
  const lines = await runAndKill(['csv', data, file, 'all-or-nothing', 'crash-2'], (l) =>
    l.startsWith('finished'),
  );
  assert.ok(lines.includes('finished done'));

  const registry = await Registry.open(data);
  t.after(() => registry.close());
  assert.equal(registry.countDevices(), ROWS);
  const job = registry.imports.get('crash-2');
  assert.equal(job?.state, 'done');
  assert.equal(job?.written, ROWS);
  const audit = registry.auditOutbox.list().filter((e) => e.action === 'device.import');
  assert.equal(audit.length, 1);
  assert.equal((audit[0]?.after as { written?: number } | undefined)?.written, ROWS);

  // The one-time secrets are there to fetch, and they open the devices.
  const sealer = importResultSealer({ dataDir: data });
  const secrets = [...registry.imports.secrets('crash-2', sealer)].flat();
  assert.equal(secrets.length, ROWS);
  const first = secrets.find((s) => s.imei === fileImei(0));
  assert.ok(first);
  assert.equal(registry.authenticate(first.imei, first.secret).imei, fileImei(0));

  // A retry under the job id answers the finished job: no row is refused as a duplicate.
  const again = await retry(registry, data, file, 'crash-2');
  assert.equal(again.replayed, true);
  assert.equal(again.written, ROWS);
  assert.equal(again.rejectedCount, 0);
  assert.equal(registry.countDevices(), ROWS);
});

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { type ImportJob, JOB_KEEP_MS, SECRETS_TTL_MS } from './import-jobs.ts';
import { prepareImportRow, Registry } from './registry.ts';
import { fileImei, testSealer } from '../../testing/index.ts';

const sealer = testSealer;
const actor = { actor: 'cli:test', role: 'cli' };

async function open(t: { after(fn: () => void | Promise<void>): void }) {
  const dir = mkdtempSync(join(tmpdir(), 'mmgw-import-jobs-'));
  let now = Date.UTC(2026, 5, 1);
  const registry = await Registry.open(dir, { now: () => now });
  t.after(async () => {
    await registry.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { registry, advance: (ms: number) => (now += ms) };
}

async function jobWithRows(registry: Registry, id: string, n: number, from = 0): Promise<ImportJob> {
  const begun = await registry.imports.begin({ id, mode: 'valid-only', digest: 'd', total: n, actor });
  assert.ok('started' in begun);
  const rows = Array.from({ length: n }, (_, i) =>
    prepareImportRow({ imei: fileImei(from + i), operator: 'op' }, 0),
  );
  await registry.imports.writeBatch(id, rows, { mode: 'valid-only', sealer, rejected: [] });
  return registry.imports.get(id) as ImportJob;
}

/** Makes the job look like another process's (the test cannot start one for every case). */
function ownedBy(registry: Registry, id: string, owner: ImportJob['owner']): void {
  const jobs = (registry.imports as unknown as { s: { jobs: { putSync(k: unknown, v: unknown): void } } }).s
    .jobs;
  jobs.putSync(['job', id], { ...registry.imports.get(id), owner });
}

/** The pid of a process that has just ended. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
  return Number(r.stdout.toString());
}

test('a job of a process that died is rolled back: its rows, its secrets, with an audit entry', async (t) => {
  const { registry } = await open(t);
  await registry.addDevice({ imei: fileImei(99), operator: 'before' });
  await jobWithRows(registry, 'dead', 3);
  assert.equal(registry.countDevices(), 4);
  const here = registry.imports.get('dead')?.owner.host ?? '';
  ownedBy(registry, 'dead', { pid: deadPid(), host: here });
  await registry.imports.recover();
  const job = registry.imports.get('dead');
  assert.equal(job?.state, 'rolled_back');
  assert.equal(job?.secrets, 'none');
  assert.deepEqual(
    [...registry.iterateDevices()].map((d) => d.imei),
    [fileImei(99)],
    'only the rows the job made are removed',
  );
  assert.deepEqual([...registry.imports.secrets('dead', sealer)], []);
  const audit = registry.auditOutbox.list();
  assert.deepEqual(
    audit.map((e) => [e.action, e.target]),
    [['device.import.rolled_back', 'import:dead']],
  );
  assert.equal((audit[0]?.after as { removed?: number } | undefined)?.removed, 3);
  // Another attempt under the same id starts afresh.
  const again = await registry.imports.begin({
    id: 'dead',
    mode: 'valid-only',
    digest: 'd',
    total: 3,
    actor,
  });
  assert.ok('started' in again && again.started.attempt === 2);
});

test('a job of this process, or of another host with a fresh heartbeat, is left alone; a stale one is not', async (t) => {
  const { registry, advance } = await open(t);
  await jobWithRows(registry, 'mine', 1);
  await registry.imports.recover();
  assert.equal(registry.imports.get('mine')?.state, 'running');
  ownedBy(registry, 'mine', { pid: 1, host: 'elsewhere' });
  await registry.imports.recover();
  assert.equal(registry.imports.get('mine')?.state, 'running');
  advance(11 * 60_000);
  await registry.imports.recover();
  assert.equal(registry.imports.get('mine')?.state, 'rolled_back');
});

test('secrets: fetched batch by batch, wiped once delivered, or when their time is up; old jobs are forgotten', async (t) => {
  const { registry, advance } = await open(t);
  await jobWithRows(registry, 'a', 2);
  await registry.imports.finish('a', { target: 'import:a', after: {}, generatedSecrets: 2 });
  await jobWithRows(registry, 'b', 1, 10);
  await registry.imports.finish('b', { target: 'import:b', after: {}, generatedSecrets: 1 });
  assert.equal([...registry.imports.secrets('a', sealer)].flat().length, 2);
  await registry.imports.wipeSecrets('a', 'delivered');
  assert.equal(registry.imports.get('a')?.secrets, 'delivered');
  assert.deepEqual([...registry.imports.secrets('a', sealer)], []);

  advance(SECRETS_TTL_MS);
  assert.deepEqual([...registry.imports.secrets('b', sealer)], [], 'past their time, even before a sweep');
  await registry.imports.recover();
  assert.equal(registry.imports.get('b')?.secrets, 'expired');
  advance(JOB_KEEP_MS);
  await registry.imports.recover();
  assert.deepEqual(registry.imports.list(), []);
});

test('a batch of secrets sealed for one job does not open as another', async (t) => {
  const { registry } = await open(t);
  await jobWithRows(registry, 'one', 1);
  const jobs = (
    registry.imports as unknown as {
      s: { jobs: { get(k: unknown): unknown; putSync(k: unknown, v: unknown): void } };
    }
  ).s.jobs;
  await jobWithRows(registry, 'two', 0);
  jobs.putSync(['secrets', 'two', 0], jobs.get(['secrets', 'one', 0]));
  jobs.putSync(['job', 'two'], { ...registry.imports.get('two'), secrets: 'sealed', secretChunks: 1 });
  assert.throws(() => [...registry.imports.secrets('two', sealer)], /wrong context/);
});

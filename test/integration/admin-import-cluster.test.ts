/**
 * A CSV device import on a cluster registry (3 nats-servers with JetStream,
 * R3 buckets; 2 admin nodes with data directories of their own): a file of
 * a few thousand rows, some bad and some repeated, imported through admin
 * 1's API, gives the same per-row results as on lmdb; admin 2 serves the
 * devices; the same file again writes nothing and reports every row as a
 * duplicate; a dry run writes nothing; all-or-nothing with a bad row writes
 * nothing. Prints the rows/s of the import.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { eventually } from '../../testing/index.ts';
import { luhnImei, startGateway } from '../harness/gateway.ts';
import { startAdminCluster } from './admin-cluster.ts';
import { ADMIN, ApiClient, assertError, WAIT } from './admin-api-helpers.ts';

/** Good rows in the file; MMGW_BENCH_IMPORT_ROWS=20000 measures a larger one. */
const GOOD = Number(process.env.MMGW_BENCH_IMPORT_ROWS ?? 3000);
const CSV = { 'content-type': 'text/csv' };

interface Row {
  imei: string;
  createdAt: number;
  status: string;
  imsi?: string;
}

/** Every device whose IMEI starts with `prefix`, page by page. */
async function listAll(api: ApiClient, prefix: string): Promise<Row[]> {
  const rows: Row[] = [];
  let after = '';
  for (;;) {
    const r = await api.call('GET', `/devices?imei=${prefix}&limit=1000${after ? `&after=${after}` : ''}`);
    assert.equal(r.status, 200, r.text);
    rows.push(...(r.json.items as Row[]));
    if (!r.json.next) return rows;
    after = r.json.next;
  }
}

test('a CSV import on a cluster registry: per-row results, shared rows, idempotent re-run, dry run', async (t) => {
  const { a1, a2 } = await startAdminCluster(t);
  const api1 = await ApiClient.as(a1.adminUrl, ADMIN.name, ADMIN.password);
  const api2 = await ApiClient.as(a2.adminUrl, ADMIN.name, ADMIN.password);
  assert.equal((await api1.call('POST', '/operators', { id: 'op', name: 'Op' })).status, 201);

  // A TAC of this run's own: the import's devices are those whose IMEI starts with it.
  const tac = `49${String(process.pid % 1_000_000).padStart(6, '0')}`;
  const imei = (n: number) => luhnImei(`${tac}${String(n).padStart(6, '0')}`);
  const before = await api1.call('POST', '/devices', { imei: imei(0), operator: 'op' });
  assert.equal(before.status, 201, before.text);
  await eventually(
    'admin 2 has the device added before',
    async () => (await api2.call('GET', `/devices/${imei(0)}`)).status === 200,
    WAIT,
  );

  const lines = ['imei,imsi,operator,status'];
  const expected: Array<[number, string]> = [];
  const bad = (code: string) => expected.push([lines.length + 1, code]);
  const goodLines: number[] = [];
  for (let n = 1; n <= GOOD; n++) {
    goodLines.push(lines.length + 1);
    lines.push(
      `${imei(n)},${n % 2 ? `26201${String(n).padStart(10, '0')}` : ''},op,${n % 7 ? 'enabled' : 'disabled'}`,
    );
    if (n % 500 === 0) {
      bad('registry.invalid_imei');
      lines.push(`${tac}${String(n).padStart(6, '0')}${(Number(imei(n).at(-1)) + 1) % 10},,op,`);
      bad('registry.duplicate');
      lines.push(`${imei(n)},,op,`); // twice in the file
      bad('registry.invalid_field');
      lines.push(`${imei(GOOD + n)},,no-such-op,`);
    }
  }
  bad('registry.duplicate');
  lines.push(`${imei(0)},,op,`); // already in the registry
  const csv = lines.join('\n');
  const codes = (r: { rejected: Array<{ line: number; code: string }> }) =>
    r.rejected.map((x) => [x.line, x.code]);

  // A dry run answers what would be written, and writes nothing.
  const dry = await api1.call('POST', '/devices/import?dryRun=true&mode=valid-only', csv, CSV);
  assert.equal(dry.status, 200, dry.text);
  assert.deepEqual(
    [dry.json.written, dry.json.wouldWrite, dry.json.rejectedCount],
    [0, GOOD, expected.length],
  );
  assert.deepEqual(codes(dry.json), expected);
  assert.deepEqual(
    (await listAll(api1, tac)).map((d) => d.imei),
    [imei(0)],
  );

  // All-or-nothing with bad rows: refused, nothing written.
  const aon = await api1.call('POST', '/devices/import', csv, CSV);
  assertError(aon, 422, 'registry.import_rejected');
  assert.deepEqual(codes(aon.json.result), expected);
  assert.deepEqual(
    (await listAll(api1, tac)).map((d) => d.imei),
    [imei(0)],
  );

  // The import itself, through admin 1.
  const started = performance.now();
  const run = await api1.call('POST', '/devices/import?mode=valid-only', csv, CSV);
  const seconds = (performance.now() - started) / 1000;
  assert.equal(run.status, 200, run.text);
  assert.deepEqual(
    [run.json.total, run.json.written, run.json.rejectedCount],
    [lines.length - 1, GOOD, expected.length],
  );
  assert.deepEqual(codes(run.json), expected);
  assert.equal(run.json.secrets.length, GOOD);
  // The same file on a single node (lmdb), in this run: the same answer, and its rate next to the cluster's.
  const single = await startGateway({
    env: { MMGW_ADMIN_NAME: ADMIN.name, MMGW_ADMIN_PASSWORD: ADMIN.password },
  });
  t.after(() => single.stop());
  const api0 = await ApiClient.as(single.adminUrl, ADMIN.name, ADMIN.password);
  assert.equal((await api0.call('POST', '/operators', { id: 'op', name: 'Op' })).status, 201);
  assert.equal((await api0.call('POST', '/devices', { imei: imei(0), operator: 'op' })).status, 201);
  const lmdbStarted = performance.now();
  const lmdb = await api0.call('POST', '/devices/import?mode=valid-only', csv, CSV);
  const lmdbSeconds = (performance.now() - lmdbStarted) / 1000;
  const answer = (j: Record<string, unknown>) => ({
    ...j,
    job: undefined,
    secrets: undefined,
    secretsExpireAt: undefined,
  });
  assert.deepEqual(answer(run.json), answer(lmdb.json));
  const rate = (s: number) => `${s.toFixed(2)} s, ${Math.round((lines.length - 1) / s)} rows/s`;
  t.diagnostic(
    `${lines.length - 1} rows (${GOOD} written): cluster ${rate(seconds)}; single node (lmdb) ${rate(lmdbSeconds)}`,
  );
  const job = await api1.call('GET', `/devices/imports/${run.json.job}`);
  assert.deepEqual([job.json.state, job.json.written], ['done', GOOD]);

  // Admin 2 serves every device the import wrote, as written.
  const want = Array.from({ length: GOOD + 1 }, (_, n) => imei(n)).sort();
  const seen = await eventually(
    'admin 2 lists every imported device',
    async () => {
      const rows = await listAll(api2, tac);
      return rows.map((d) => d.imei).join() === want.join() && rows;
    },
    WAIT,
  );
  const one = seen.find((d) => d.imei === imei(7));
  assert.deepEqual([one?.status, one?.imsi], ['disabled', `26201${String(7).padStart(10, '0')}`]);

  // The same file again, through admin 2: nothing written, every row it wrote reported as in the registry.
  const again = await api2.call('POST', '/devices/import?mode=valid-only', csv, CSV);
  assert.equal(again.status, 200, again.text);
  assert.deepEqual([again.json.written, again.json.rejectedCount], [0, GOOD + expected.length]);
  // As on lmdb: a row in the registry is a duplicate; the first 1,000 rejections are kept.
  const existing = [...goodLines, lines.length].map((line): [number, string] => [line, 'registry.duplicate']);
  const all = [...expected.slice(0, -1), ...existing].sort((x, y) => x[0] - y[0]);
  assert.deepEqual(codes(again.json), all.slice(0, 1000));
  assert.deepEqual(await listAll(api1, tac), seen, 'no record changed');
});

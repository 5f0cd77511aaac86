/**
 * Imports on a registry on the shared state (here the lmdb-backed shared
 * state; test/integration/admin-import-cluster.test.ts runs one on a 3-server
 * JetStream cluster): two registries on one shared state are two admin nodes.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileImei, testSealer } from '../../testing/index.ts';
import { importDeviceCsv } from './device-import.ts';
import { prepareImportRow, Registry } from './registry.ts';
import { LmdbSharedState } from './shared/lmdb.ts';

type Context = { after(fn: () => void | Promise<void>): void };
const actor = { actor: 'cli:test', role: 'cli' };

/** Two admin nodes (data directories of their own) on one shared state; node 1's clock is `clock.now`. */
async function twoNodes(t: Context) {
  const dir = mkdtempSync(join(tmpdir(), 'mmgw-import-shared-'));
  const state = new LmdbSharedState(join(dir, 'shared'));
  const clock = { now: Date.UTC(2026, 5, 1) };
  const one = await Registry.open(join(dir, 'one'), { shared: state, now: () => clock.now });
  const two = await Registry.open(join(dir, 'two'), { shared: state });
  t.after(async () => {
    await one.close();
    await two.close();
    await state.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { one, two, clock, dir, state };
}

const imeis = (r: Registry) => [...r.iterateDevices()].map((d) => d.imei);

test('a batch import on the shared state answers as on lmdb; the other node has the rows; again writes nothing', async (t) => {
  const { one, two } = await twoNodes(t);
  await two.addDevice({ imei: fileImei(9), operator: 'op' });
  const rows = [
    { line: 2, imei: fileImei(1), operator: 'op', imsi: '262010000000001' },
    { line: 3, imei: '356938035643808', operator: 'op' },
    { line: 4, imei: fileImei(2), operator: 'op', status: 'disabled' as const },
    { line: 5, imei: fileImei(1), operator: 'op' },
    { line: 6, imei: fileImei(9), operator: 'op' },
  ];
  const aon = await one.importDevices(rows, { mode: 'all-or-nothing' });
  assert.deepEqual(
    aon.rejected.map((r) => [r.line, r.code]),
    [
      [3, 'registry.invalid_imei'],
      [5, 'registry.duplicate'],
      [6, 'registry.duplicate'],
    ],
  );
  assert.equal(aon.written, 0);
  assert.deepEqual(imeis(two), [fileImei(9)]);

  const progress: number[] = [];
  const first = await one.importDevices(rows, {
    mode: 'valid-only',
    onProgress: (done) => progress.push(done),
  });
  assert.equal(first.written, 2);
  assert.deepEqual(first.secrets.map((s) => s.imei).sort(), [fileImei(1), fileImei(2)].sort());
  assert.equal(progress.at(-1), 3, 'the rows checked against the registry, as on lmdb');
  assert.deepEqual(imeis(two), [fileImei(1), fileImei(2), fileImei(9)].sort());
  assert.equal(two.getDevice(fileImei(2))?.status, 'disabled');
  assert.deepEqual(
    [...two.iterateDevicesByImsi('26201')].map((d) => d.imei),
    [fileImei(1)],
  );
  const secret = first.secrets.find((s) => s.imei === fileImei(1))?.secret ?? '';
  assert.equal(two.authenticate(fileImei(1), secret).imei, fileImei(1));

  const before = [...two.iterateDevices()];
  const again = await one.importDevices(rows, { mode: 'valid-only' });
  assert.equal(again.written, 0);
  assert.deepEqual(
    again.rejected.map((r) => [r.line, r.code]),
    [
      [2, 'registry.duplicate'],
      [3, 'registry.invalid_imei'],
      [4, 'registry.duplicate'],
      [5, 'registry.duplicate'],
      [6, 'registry.duplicate'],
    ],
  );
  assert.deepEqual([...two.iterateDevices()], before);
});

test('a CSV import job on the shared state: rows on the other node, the job here, the same file again is all duplicates', async (t) => {
  const { one, two } = await twoNodes(t);
  const text = `imei,operator\n${Array.from({ length: 250 }, (_, i) => `${fileImei(100 + i)},op`).join('\n')}\n`;
  const chunks = async function* () {
    yield text;
  };
  const run = (r: Registry) =>
    importDeviceCsv(
      r,
      { first: chunks(), again: chunks },
      { mode: 'valid-only', actor, source: 'file', sealer: testSealer, batchRows: 100 },
    );
  const out = await run(one);
  assert.deepEqual([out.written, out.rejectedCount, out.job?.state], [250, 0, 'done']);
  assert.equal(two.countDevices(), 250);
  assert.equal(two.imports.get(out.job?.id ?? ''), undefined, "the job is node 1's own");
  assert.equal([...one.imports.secrets(out.job?.id ?? '', testSealer)].flat().length, 250);

  const again = await run(two);
  assert.deepEqual([again.written, again.rejectedCount], [0, 250]);
  assert.ok(again.rejected.every((r) => r.code === 'registry.duplicate'));
  assert.equal(one.countDevices(), 250);
});

test('on the shared state a job whose process died keeps its rows, ends failed and keeps their secrets', async (t) => {
  const { one, two, clock } = await twoNodes(t);
  const begun = await one.imports.begin({ id: 'cut', mode: 'valid-only', digest: 'd', total: 9, actor });
  assert.ok('started' in begun);
  const rows = [0, 1, 2].map((i) => prepareImportRow({ imei: fileImei(200 + i), operator: 'op' }, 0));
  await one.imports.writeBatch('cut', rows, { mode: 'valid-only', sealer: testSealer, rejected: [] });
  // No heartbeat for longer than a live job's: recovery takes it for dead.
  clock.now += 11 * 60_000;
  await one.imports.recover();
  const job = one.imports.get('cut');
  assert.equal(job?.state, 'failed');
  assert.match(job?.reason ?? '', /the 3 rows it wrote stay/);
  assert.equal(job?.secrets, 'sealed');
  assert.deepEqual(
    [...one.imports.secrets('cut', testSealer)].flat().map((s) => s.imei),
    rows.map((r) => r.record.imei),
  );
  assert.deepEqual(
    imeis(two),
    rows.map((r) => r.record.imei),
  );
  assert.deepEqual(
    one.auditOutbox.list().map((e) => e.action),
    ['device.import.failed'],
  );
});

test('on the shared state a rolled-back job removes the rows it wrote, and their accounts, on every node', async (t) => {
  const { one, two } = await twoNodes(t);
  await two.addDevice({ imei: fileImei(300), operator: 'op' });
  const begun = await one.imports.begin({ id: 'undo', mode: 'all-or-nothing', digest: 'd', total: 3, actor });
  assert.ok('started' in begun);
  const rows = [1, 2].map((i) => prepareImportRow({ imei: fileImei(300 + i), operator: 'op' }, 0));
  const r = await one.imports.writeBatch('undo', rows, {
    mode: 'all-or-nothing',
    sealer: testSealer,
    rejected: [],
  });
  assert.equal(r.written, 2);
  await two.putDeviceAccount(fileImei(301), { label: 'm', service: 'mail', user: 'u', secret: 's' });
  const ended = await one.imports.rollback('undo', { state: 'failed', reason: 'test' });
  assert.deepEqual([ended?.state, ended?.written], ['failed', 0]);
  assert.deepEqual(imeis(two), [fileImei(300)]);
  assert.deepEqual(two.listDeviceAccounts(fileImei(301)), []);
});

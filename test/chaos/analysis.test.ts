import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { DELIVERY_MS, healthy, judge, percentile, recovery } from './analysis.ts';
import type { FaultResult } from './chaos.ts';
import { ItemTable } from './records.ts';
import { HEARTBEAT_TTL_MS } from '../../server/node.ts';
import {
  downtimeMinutes,
  MEMBERSHIP_TTL_MS,
  meetsTargets,
  renderReport,
  writeIntoResults,
} from './report.ts';

/** Handset `from` sends chat item `seq` at t; accepted unless `fail`; seen by `from + 1` at each of `seen`. */
function item(table: ItemTable, from: number, seq: number, t: number, seen: number[], fail?: string): void {
  const id = `cx-c-${from}-${seq}`;
  if (fail)
    table.add({ r: 'attempt', item: id, from, to: from + 1, t, ok: false, code: fail, attempt: 1, ms: 10 });
  table.add({
    r: 'attempt',
    item: id,
    from,
    to: from + 1,
    t: fail ? t + 1000 : t,
    ok: true,
    attempt: fail ? 2 : 1,
    ms: 10,
  });
  for (const at of seen) table.add({ r: 'seen', item: id, h: from + 1, t: at, via: 'push' });
}

test('a handset works again at its first good item after its last bad one', () => {
  const table = new ItemTable();
  item(table, 0, 1, 1000, [1100]);
  item(table, 0, 2, 11_000, [11_100], 'bus.no_responders');
  item(table, 0, 3, 14_000, [14_000 + DELIVERY_MS + 1]); // seen too late: bad
  item(table, 0, 4, 17_000, [17_200]);
  item(table, 0, 5, 20_000, [20_100]);
  assert.deepEqual(recovery(table, 0, 10_000, 30_000, 60_000), { ms: 7000, lastBadAt: 14_000 });
  // Handset 1 receives the same items: affected the same way.
  assert.deepEqual(recovery(table, 1, 10_000, 30_000, 60_000), { ms: 7000, lastBadAt: 14_000 });
  // Handset 2 takes no part: unaffected.
  assert.equal(recovery(table, 2, 10_000, 30_000, 60_000), undefined);
  assert.equal(healthy(table, 0, 10_000, 60_000), true);
  assert.equal(healthy(table, 0, 10_000, 15_000), false);
});

test('an item under way when the fault came and failing counts from the fault', () => {
  const table = new ItemTable();
  item(table, 0, 1, 9000, [], 'request.timeout');
  item(table, 0, 2, 16_000, [16_100]);
  assert.deepEqual(recovery(table, 0, 10_000, 30_000, 60_000), { ms: 6000, lastBadAt: 10_000 });
});

test('judge counts lost, doubled, out of order and the recovery percentiles', () => {
  const table = new ItemTable();
  item(table, 0, 1, 1000, [1100]);
  item(table, 0, 2, 2000, [2100, 2200]); // doubled
  item(table, 0, 3, 3000, [3500]); // seen after item 4: out of order
  item(table, 0, 4, 3100, [3200]);
  item(table, 0, 5, 12_000, []); // accepted, never seen: lost
  item(table, 2, 1, 12_000, [12_100]);
  const f = judge(table, { from: 0, t0: 11_000, to: 20_000, deadline: 40_000, handsets: 4 });
  assert.equal(f.items, 6);
  assert.equal(f.lost, 1);
  assert.deepEqual(f.lostIds, ['cx-c-0-5']);
  assert.equal(f.doubled, 1);
  assert.equal(f.outOfOrder, 1);
  // Handsets 0 and 1 have a bad item after the fault and nothing good after it.
  assert.equal(f.affected, 2);
  assert.equal(f.unrecovered, 2);
  assert.equal(f.meanDowntimeMs, (2 * 9000) / 4);
});

test('times of a fault nothing works through count from its end; its downtime from its start', () => {
  const table = new ItemTable();
  item(table, 0, 1, 9000, [], 'request.timeout');
  item(table, 0, 2, 31_000, [31_100]);
  const w = { from: 0, t0: 10_000, to: 40_000, deadline: 60_000, handsets: 2 };
  assert.equal(judge(table, w).p99Ms, 21_000);
  const f = judge(table, { ...w, timesFrom: 30_000 });
  assert.equal(f.p99Ms, 1000);
  assert.equal(f.meanDowntimeMs, (2 * 21_000) / 2);
});

test('a fault of steps: times count from the step of the last failed item; downtime from t0', () => {
  const table = new ItemTable();
  item(table, 0, 1, 12_000, [], 'request.unavailable'); // in step 1 (from 10 s)
  item(table, 0, 2, 31_000, [], 'request.unavailable'); // in step 3 (from 30 s)
  item(table, 0, 3, 33_000, [33_100]);
  const w = { from: 0, t0: 10_000, to: 50_000, deadline: 60_000, handsets: 1 };
  assert.equal(judge(table, w).p99Ms, 23_000);
  const f = judge(table, { ...w, steps: [10_000, 20_000, 30_000, 40_000] });
  assert.equal(f.p99Ms, 3000);
  assert.equal(f.meanDowntimeMs, 23_000);
});

test('percentile is nearest-rank', () => {
  assert.equal(percentile([], 50), undefined);
  assert.equal(percentile([1, 2, 3, 4], 50), 2);
  assert.equal(percentile([1, 2, 3, 4], 99), 4);
});

function result(name: string, over: Partial<FaultResult['figures']> = {}, humanAction = 'none'): FaultResult {
  return {
    name,
    humanAction,
    figures: {
      handsets: 10,
      items: 100,
      accepted: 100,
      notAccepted: 0,
      lost: 0,
      doubled: 0,
      outOfOrder: 0,
      affected: 0,
      unrecovered: 0,
      meanDowntimeMs: 0,
      lostIds: [],
      doubledIds: [],
      ...over,
    },
  };
}

test('the budget adds a human response to faults that needed one', () => {
  const fine = result('SIGTERM edge-1', { affected: 5, p99Ms: 2000, meanDowntimeMs: 6000 });
  assert.equal(meetsTargets(fine), true);
  assert.equal(downtimeMinutes(fine), 0.1);
  const bad = result(
    'kill -9 transport-1',
    { affected: 5, unrecovered: 5, meanDowntimeMs: 30_000 },
    'restart the app',
  );
  assert.equal(meetsTargets(bad), false);
  assert.equal(downtimeMinutes(bad), 0.5 + 15);
  const md = renderReport([fine, bad], { command: 'npm run chaos', startedAt: new Date(0), minutes: 3 });
  assert.match(md, /\| SIGTERM edge-1 \| 5\/10 \| – \| 2\.0 \|/);
  assert.match(md, /1 of 2 faults meet them/);
  assert.match(md, /Known failures: kill -9 transport-1\./);
  // 0.1 × 8 + 15.5 × 8 a year.
  assert.match(md, /Cluster: \*\*124\.80 minutes a year\*\*/);
});

test('--write puts the report at the top of the Availability section', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mmgw-chaos-report-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'RESULTS.md');
  writeFileSync(path, '# Results\n\n## Edge\n\nold\n');
  writeIntoResults(path, 'run 1\n');
  assert.equal(readFileSync(path, 'utf8'), '# Results\n\n## Edge\n\nold\n\n## Availability\n\nrun 1\n');
  writeIntoResults(path, 'run 2\n');
  assert.equal(
    readFileSync(path, 'utf8'),
    '# Results\n\n## Edge\n\nold\n\n## Availability\n\nrun 2\n\nrun 1\n',
  );
});

test('kill -9 of a transport is timed against 5 s after the nodes’ membership TTL; others 5 s', () => {
  assert.equal(MEMBERSHIP_TTL_MS, HEARTBEAT_TTL_MS);
  const p99 = (name: string, ms: number) => meetsTargets(result(name, { p99Ms: ms }));
  assert.equal(p99('kill -9 transport-1', DELIVERY_MS + MEMBERSHIP_TTL_MS), true);
  assert.equal(p99('kill -9 transport-1', DELIVERY_MS + MEMBERSHIP_TTL_MS + 1), false);
  assert.equal(p99('SIGSTOP transport-1', DELIVERY_MS + 1), false);
  assert.equal(p99('kill -9 edge-1', DELIVERY_MS + 1), false);
});

test('a fault whose recovery action failed (a node never ready again) misses the targets', () => {
  const r = result('rolling restart of every mmgw node');
  assert.equal(meetsTargets(r), true);
  assert.equal(meetsTargets({ ...r, note: 'recovery action failed: timed out' }), false);
});

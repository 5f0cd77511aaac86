import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { runAndKill, writeDeviceCsvFile } from '../../testing/index.ts';

/**
 * A 200 MB import file (~610,000 wide rows) checked and imported with
 * bounded memory (issue #11 item 8: a 203 MB dry run used to take 4.8 GB).
 * The import runs in a child process that measures itself (registry-child.ts
 * `memory`), from after a 5,000-row warm-up import, as in a gateway that has
 * run before: RssAnon, what the process allocated, must grow by less than
 * 64 MB, dry run or real, and so must the dry run's whole RSS. Not held to
 * the bound, only reported: a real import's RSS also counts the pages of the
 * registry's lmdb map it touched (page cache, ~230 MB for these rows), and
 * growth from a cold process also counts V8 sizing its heap for any sustained
 * work (25-45 MB, varying from run to run with GC timing). Nothing here
 * asserts on time; MMGW_IMPORT_TEST_MB makes the file smaller.
 */
const MB = Number(process.env.MMGW_IMPORT_TEST_MB ?? 200);
const BOUND_MB = 64;

test(`a ${MB} MB import grows the importing process by less than ${BOUND_MB} MB, dry run or real`, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mmgw-import-memory-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'devices.csv');
  const { rows } = await writeDeviceCsvFile(file, { bytes: MB * 1024 * 1024 }, { wide: true });
  const lines = await runAndKill(['memory', join(dir, 'data'), file], () => false);
  const figures = JSON.parse(lines.at(-1) ?? '{}');
  t.diagnostic(JSON.stringify(figures));
  const { dryRun, real } = figures;
  assert.equal(dryRun.rows, rows);
  assert.equal(real.rows, rows);
  for (const [what, r] of [
    ['dry run', dryRun],
    ['import', real],
  ] as const) {
    assert.ok(r.anonGrowthMb < BOUND_MB, `${what}: anonymous memory grew by ${r.anonGrowthMb} MB`);
  }
  assert.ok(dryRun.rssGrowthMb < BOUND_MB, `dry run: RSS grew by ${dryRun.rssGrowthMb} MB`);
});

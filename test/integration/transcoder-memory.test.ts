/**
 * The one test here that is about size: 20 concurrent 24-megapixel inputs
 * through a role with the default limits stay under the documented memory
 * ceiling (limits.ts, memoryCeilingBytes). Measured in a fresh process
 * (memory-probe.ts); it bounds bytes, never a duration.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { DEFAULT_LIMITS, memoryCeilingBytes } from '../../transcoder/limits.ts';
import type { MemoryProbeResult } from '../harness/transcoder-memory-probe.ts';
import { photoJpeg, screenshotPng, withJpegComment, withPngText } from '../../testing/index.ts';

test('20 concurrent 24-MP inputs stay under the documented memory ceiling', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mmgw-transcoder-mem-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const jpeg = await photoJpeg(6000, 4000, { seed: 5, detail: true });
  const png = await screenshotPng(6000, 4000);
  // Different bytes for each, so that neither the cache nor single flight can share work.
  for (let i = 0; i < 20; i++) {
    const bytes = i % 2 === 0 ? withJpegComment(jpeg, `copy ${i}`) : withPngText(png, `copy ${i}`);
    writeFileSync(join(dir, String(i).padStart(2, '0')), bytes);
  }
  const probe = fileURLToPath(new URL('../harness/transcoder-memory-probe.ts', import.meta.url));
  const run = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', probe, dir], {
    encoding: 'utf8',
    timeout: 240_000,
  });
  assert.equal(run.status, 0, run.stderr);
  const result = JSON.parse(run.stdout.trim()) as MemoryProbeResult;
  assert.deepEqual(result.errors, []);
  assert.equal(result.served, 20);
  const growth = result.peak - result.before;
  const ceiling = memoryCeilingBytes(DEFAULT_LIMITS);
  assert.ok(
    growth < ceiling,
    `RSS grew by ${Math.round(growth / 2 ** 20)} MB; the ceiling is ${Math.round(ceiling / 2 ** 20)} MB`,
  );
});

import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { captureIo, runCliPiece, tempDir } from '../../../testing/index.ts';
import type { ImportRejection } from '../../store/registry.ts';
import { runImport } from './import.ts';
import { addImportJobCommands, printRejected, runImportResult } from './import-jobs.ts';

test('rejections are listed up to 200, then counted', () => {
  const io = captureIo();
  const rejected = Array.from({ length: 200 }, (_, i) => ({ line: i + 2, reason: 'bad' }) as ImportRejection);
  printRejected(io, rejected, 250);
  const lines = io.stderr.trim().split('\n');
  assert.equal(lines.length, 201);
  assert.equal(lines[0], 'line 2: bad');
  assert.equal(lines[200], '… and 50 more rejected rows');
});

test("an import job's result is read afterwards, its secrets saved once, and the job listed", async (t) => {
  const dir = tempDir(t);
  const data = join(dir, 'data');
  await assert.rejects(runImportResult('nope', { data }, captureIo()), { code: 'registry.not_found' });

  const file = join(dir, 'devices.csv');
  writeFileSync(file, 'imei,operator\n356938035643809,acme\n');
  const opts = { data, mode: 'all-or-nothing' as const, maxRows: '10', jobId: 'j-1' };
  assert.equal(await runImport(file, opts, captureIo()), 0);

  const secretsOut = join(dir, 'secrets.csv');
  const first = captureIo();
  assert.equal(await runImportResult('j-1', { data, secretsOut }, first), 0);
  assert.match(first.stdout, /^job j-1: done; all-or-nothing: wrote 1 of 1 rows; 0 rejected; by cli:/);
  assert.match(first.stdout, /secrets of 1 device written to /);
  assert.match(readFileSync(secretsOut, 'utf8'), /^imei,secret\n356938035643809,\S+\n$/);

  const again = captureIo();
  assert.equal(await runImportResult('j-1', { data, json: true }, again), 0);
  const view = JSON.parse(again.stdout);
  assert.deepEqual([view.id, view.secrets, view.secretsFile], ['j-1', 'delivered', null]);
  assert.equal(view.owner, undefined);

  const listed = await runCliPiece(addImportJobCommands, ['imports', '--data', data]);
  assert.match(listed.stdout, /^j-1\tdone\tall-or-nothing\t1\/1\t\d{4}-\S+\tcli:/);
});

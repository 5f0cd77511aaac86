import assert from 'node:assert/strict';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { captureIo, tempDir } from '../../../testing/index.ts';
import { type ImportOptions, runImport } from './import.ts';
import { withRegistry } from './options.ts';

const GOOD = ['356938035643809', '490154203237518'];

function fixture(t: { after(fn: () => void): void }) {
  const dir = tempDir(t);
  const file = join(dir, 'devices.csv');
  writeFileSync(file, `imei,operator\n${GOOD[0]},acme\n123,acme\n${GOOD[1]},acme\n`);
  const options = (o: Partial<ImportOptions> = {}): ImportOptions => ({
    data: join(dir, 'data'),
    mode: 'all-or-nothing',
    maxRows: '100',
    ...o,
  });
  const imeis = () => withRegistry(options(), async (r) => r.listDevices({ limit: 10 }).map((d) => d.imei));
  return { dir, file, options, imeis };
}

test('all-or-nothing refuses the file over one bad row and says which line', async (t) => {
  const { file, options, imeis } = fixture(t);
  const io = captureIo();
  assert.equal(await runImport(file, options(), io), 1);
  assert.match(io.stderr, /^line 3: /m);
  assert.match(io.stderr, /all-or-nothing: 1 row rejected, nothing written\n/);
  assert.deepEqual(await imeis(), []);
});

test('a dry run counts what it would write and writes nothing', async (t) => {
  const { file, options, imeis } = fixture(t);
  const io = captureIo();
  assert.equal(await runImport(file, options({ mode: 'valid-only', dryRun: true, json: true }), io), 0);
  const out = JSON.parse(io.stdout);
  assert.deepEqual(
    [out.dryRun, out.total, out.written, out.wouldWrite, out.rejectedCount],
    [true, 3, 0, 2, 1],
  );
  assert.equal(out.rejected[0].line, 3);
  assert.deepEqual(await imeis(), []);
});

test('valid-only writes the good rows and their secrets to a 0600 file, once', async (t) => {
  const { dir, file, options, imeis } = fixture(t);
  const secretsOut = join(dir, 'secrets.csv');
  const io = captureIo();
  assert.equal(await runImport(file, options({ mode: 'valid-only', secretsOut }), io), 0);
  assert.match(io.stdout, /^valid-only: wrote 2 of 3 rows; 1 rejected\nsecrets of 2 devices written to /);
  assert.equal(statSync(secretsOut).mode & 0o777, 0o600);
  const lines = readFileSync(secretsOut, 'utf8').trim().split('\n');
  assert.equal(lines[0], 'imei,secret');
  assert.deepEqual(
    lines
      .slice(1)
      .map((l) => l.split(',')[0])
      .sort(),
    GOOD,
  );
  assert.deepEqual(await imeis(), GOOD);
});

test('without --secrets-out the secrets stay sealed and the note says how to fetch them', async (t) => {
  const { file, options } = fixture(t);
  const io = captureIo();
  assert.equal(await runImport(file, options({ mode: 'valid-only', jobId: 'j-1' }), io), 0);
  assert.match(io.stderr, /^import job j-1: writing/);
  assert.match(
    io.stderr,
    /the secrets of 2 devices \(2 generated\) were not saved; `mmgw device import-result j-1 --secrets-out FILE`/,
  );
});

test('flags and files are checked before anything is opened', async (t) => {
  const { dir, file, options } = fixture(t);
  await assert.rejects(runImport(file, options({ maxRows: '0' }), captureIo()), {
    code: 'request.bad_input',
    field: 'max-rows',
  });
  await assert.rejects(runImport(join(dir, 'missing.csv'), options(), captureIo()), {
    code: 'request.bad_input',
    field: 'file',
  });
  writeFileSync(file, 'serial,operator\n1,acme\n');
  await assert.rejects(runImport(file, options(), captureIo()), {
    code: 'registry.import_rejected',
    message: /line 1: .*nothing written/,
  });
});

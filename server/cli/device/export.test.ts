import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { runCliPiece, tempDir } from '../../../testing/index.ts';
import { deviceCsvHeader } from '../../store/device-csv.ts';
import { addExportCommand } from './export.ts';
import { withRegistry } from './options.ts';

test('export writes every handset as CSV to stdout or a file, and never a secret', async (t) => {
  const dir = tempDir(t);
  const data = join(dir, 'data');
  const secrets = await withRegistry({ data }, async (r) => [
    (await r.addDevice({ imei: '356938035643809', operator: 'acme' })).secret,
    (await r.addDevice({ imei: '490154203237518', operator: 'acme', imsi: '001010123456789' })).secret,
  ]);
  const out = await runCliPiece(addExportCommand, ['export', '--data', data]);
  assert.equal(out.code, 0);
  const lines = out.stdout.split('\n');
  assert.equal(`${lines[0]}\n`, deviceCsvHeader());
  assert.match(lines[1] ?? '', /^356938035643809,/);
  assert.match(lines[2] ?? '', /^490154203237518,001010123456789,acme/);
  assert.equal(lines.length, 4);
  for (const s of secrets) assert.equal(out.stdout.includes(s), false);

  const file = join(dir, 'devices.csv');
  const toFile = await runCliPiece(addExportCommand, ['export', '--out', file, '--data', data]);
  assert.equal(toFile.stdout, '');
  assert.equal(readFileSync(file, 'utf8'), out.stdout);
});

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { ensureOperator, luhnImei, runMmgw } from '../harness/gateway.ts';

function tempDir(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'mmgw-cli-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

describe('mmgw device', () => {
  test('add, show, list, disable, enable, reset-secret, remove', async (t) => {
    const data = tempDir(t);
    const imei = '356938035643809';
    const addDemo = () =>
      runMmgw(['device', 'add', '--imei', imei, '--operator', 'demo', '--data', data, '--json']);
    // An operator that does not exist is refused, as the API refuses it.
    const unknown = await addDemo();
    assert.equal(unknown.code, 2);
    assert.deepEqual(JSON.parse(unknown.stdout).error.code, 'registry.invalid_field');
    assert.match(
      JSON.parse(unknown.stdout).error.message,
      /operator demo is not defined.*mmgw operator add demo/,
    );
    await ensureOperator(data, 'demo');
    await ensureOperator(data, 'other');
    const add = await runMmgw([
      'device',
      'add',
      '--imei',
      imei,
      '--operator',
      'demo',
      '--imsi',
      '310150123456789',
      '--data',
      data,
      '--json',
    ]);
    assert.equal(add.code, 0, add.stderr);
    const added = JSON.parse(add.stdout);
    assert.equal(added.device.imei, imei);
    assert.equal(added.device.status, 'enabled');
    assert.match(added.secret, /^[A-Za-z0-9_-]{43}$/);

    // Human output shows the secret once, with a warning.
    const second = await runMmgw([
      'device',
      'add',
      '--imei',
      luhnImei('49015420323751'),
      '--operator',
      'other',
      '--profile',
      'gold',
      '--data',
      data,
    ]);
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stdout, /secret\s+[A-Za-z0-9_-]{43}\n\(shown only this once/);

    const dup = await addDemo();
    assert.equal(dup.code, 2);
    assert.equal(JSON.parse(dup.stdout).error.code, 'registry.duplicate');

    const show = await runMmgw(['device', 'show', imei, '--data', data, '--json']);
    assert.equal(show.code, 0);
    assert.equal(JSON.parse(show.stdout).device.imsi, '310150123456789');
    assert.equal(JSON.parse(show.stdout).device.secret, undefined);

    const list = await runMmgw(['device', 'list', '--data', data, '--json']);
    assert.deepEqual(
      JSON.parse(list.stdout).devices.map((d: { imei: string }) => d.imei),
      ['356938035643809', '490154203237518'],
    );
    const byOperator = await runMmgw(['device', 'list', '--operator', 'other', '--data', data]);
    assert.match(byOperator.stdout, /^IMEI\s+IMSI\s+OPERATOR\s+PROFILE\s+STATUS/);
    assert.match(byOperator.stdout, /490154203237518\s+-\s+other\s+gold\s+enabled/);
    assert.doesNotMatch(byOperator.stdout, /356938035643809/);
    const paged = await runMmgw(['device', 'list', '--limit', '1', '--data', data, '--json']);
    assert.equal(JSON.parse(paged.stdout).next, imei);

    const disable = await runMmgw(['device', 'disable', imei, '--data', data]);
    assert.equal(disable.code, 0);
    assert.equal(disable.stdout, `${imei}: disabled\n`);
    const disabled = await runMmgw(['device', 'list', '--status', 'disabled', '--data', data, '--json']);
    assert.deepEqual(
      JSON.parse(disabled.stdout).devices.map((d: { imei: string }) => d.imei),
      [imei],
    );
    assert.equal((await runMmgw(['device', 'enable', imei, '--data', data])).stdout, `${imei}: enabled\n`);

    const reset = await runMmgw(['device', 'reset-secret', imei, '--data', data, '--json']);
    assert.notEqual(JSON.parse(reset.stdout).secret, added.secret);

    assert.equal((await runMmgw(['device', 'remove', imei, '--data', data])).code, 0);
    const gone = await runMmgw(['device', 'show', imei, '--data', data]);
    assert.equal(gone.code, 2);
    assert.equal(gone.stderr, `mmgw: no device with IMEI ${imei}\n`);
  });

  test('an invalid IMEI is refused with a clear message and a non-zero exit', async (t) => {
    const data = tempDir(t);
    await ensureOperator(data, 'demo');
    const bad = await runMmgw([
      'device',
      'add',
      '--imei',
      '356938035643808',
      '--operator',
      'demo',
      '--data',
      data,
    ]);
    assert.equal(bad.code, 2);
    assert.equal(bad.stderr, 'mmgw: IMEI 356938035643808: check digit should be 9\n');
    const short = await runMmgw([
      'device',
      'add',
      '--imei',
      '1234',
      '--operator',
      'demo',
      '--data',
      data,
      '--json',
    ]);
    assert.equal(short.code, 2);
    assert.deepEqual(JSON.parse(short.stdout), {
      error: { code: 'registry.invalid_imei', message: 'IMEI 1234: must be 15 digits, got 4' },
    });
    const imsi = await runMmgw([
      'device',
      'add',
      '--imei',
      '356938035643809',
      '--imsi',
      '12',
      '--operator',
      'demo',
      '--data',
      data,
    ]);
    assert.equal(imsi.code, 2);
    assert.match(imsi.stderr, /IMSI "12": must be 14 or 15 digits/);
    // Nothing was written.
    assert.equal(
      JSON.parse((await runMmgw(['device', 'list', '--data', data, '--json'])).stdout).devices.length,
      0,
    );
    // A usage error is a non-zero exit too, and JSON with --json.
    const usage = await runMmgw(['device', 'add', '--operator', 'demo', '--data', data, '--json']);
    assert.equal(usage.code, 2);
    assert.equal(JSON.parse(usage.stdout).error.code, 'request.bad_input');
    assert.match(JSON.parse(usage.stdout).error.message, /--imei/);
  });

  test('commands other than add and import do not create a registry on a mistyped --data', async (t) => {
    const data = join(tempDir(t), 'typo');
    for (const args of [['list'], ['show', '356938035643809'], ['disable', '356938035643809'], ['export']]) {
      const res = await runMmgw(['device', ...args, '--data', data]);
      assert.equal(res.code, 2, args.join(' '));
      assert.equal(res.stderr, `mmgw: no registry in ${data} (is --data right?)\n`);
    }
    assert.throws(() => statSync(data), /ENOENT/);
  });

  test('MMGW_DATA is the default data directory', async (t) => {
    const data = tempDir(t);
    const operator = await runMmgw(['operator', 'add', 'demo'], { env: { MMGW_DATA: data } });
    assert.equal(operator.code, 0, operator.stderr);
    const add = await runMmgw(['device', 'add', '--imei', '356938035643809', '--operator', 'demo'], {
      env: { MMGW_DATA: data },
    });
    assert.equal(add.code, 0, add.stderr);
    const show = await runMmgw(['device', 'show', '356938035643809', '--data', data]);
    assert.equal(show.code, 0);
  });

  test('import validates every row, then writes all or none (or the valid ones), and export round-trips', async (t) => {
    const data = tempDir(t);
    const file = join(data, 'devices.csv');
    const good = [
      luhnImei('35000000000001'),
      luhnImei('35000000000002'),
      luhnImei('35000000000003'),
    ] as const;
    writeFileSync(
      file,
      [
        'imei,imsi,operator,profile,status',
        `${good[0]},310150123456789,acme,basic,enabled`,
        '356938035643808,,acme,,',
        `${good[1]},,acme,,disabled`,
        `${good[0]},,acme,,`,
        `${good[2]},,"acme",,`,
        '',
      ].join('\n'),
    );
    const strict = await runMmgw(['device', 'import', file, '--data', data]);
    assert.notEqual(strict.code, 0);
    assert.match(strict.stderr, /^line 3: IMEI 356938035643808: check digit should be 9$/m);
    assert.match(
      strict.stderr,
      new RegExp(`^line 5: IMEI ${good[0]} appears twice in the file \\(first on line 2\\)$`, 'm'),
    );
    assert.match(strict.stderr, /^all-or-nothing: 2 rows rejected, nothing written$/m);
    assert.equal(
      JSON.parse((await runMmgw(['device', 'list', '--data', data, '--json'])).stdout).devices.length,
      0,
    );

    const secrets = join(data, 'secrets.csv');
    const lenient = await runMmgw([
      'device',
      'import',
      file,
      '--mode',
      'valid-only',
      '--secrets-out',
      secrets,
      '--data',
      data,
      '--json',
    ]);
    assert.equal(lenient.code, 0, lenient.stderr);
    const result = JSON.parse(lenient.stdout);
    assert.equal(result.mode, 'valid-only');
    assert.equal(result.total, 5);
    assert.equal(result.written, 3);
    assert.deepEqual(
      result.rejected.map((r: { line: number; code: string }) => [r.line, r.code]),
      [
        [3, 'registry.invalid_imei'],
        [5, 'registry.duplicate'],
      ],
    );
    const secretLines = readFileSync(secrets, 'utf8').trim().split('\n');
    assert.equal(secretLines[0], 'imei,secret');
    assert.equal(secretLines.length, 4);
    assert.equal(statSync(secrets).mode & 0o777, 0o600);

    // Importing the same file again: every row is now a registry duplicate.
    const again = await runMmgw(['device', 'import', file, '--mode', 'valid-only', '--data', data]);
    assert.match(again.stdout, /^valid-only: wrote 0 of 5 rows; 5 rejected$/m);
    assert.match(again.stderr, new RegExp(`line 2: IMEI ${good[0]} is already in the registry`));

    const out = join(data, 'export.csv');
    assert.equal((await runMmgw(['device', 'export', '--out', out, '--data', data])).code, 0);
    const exported = readFileSync(out, 'utf8').trim().split('\n');
    // The API's column set (the file above used the CLI's old header: profile is read as serviceProfile).
    assert.equal(
      exported[0],
      'imei,imsi,operator,operatorProfile,serviceProfile,model,status,createdAt,lastSeenAt',
    );
    assert.equal(exported.length, 4);
    assert.match(
      exported[1]!,
      new RegExp(`^${good[0]},310150123456789,acme,,basic,,enabled,\\d{4}-\\d\\d-\\d\\dT[^,]*,$`),
    );
    assert.match(exported[2]!, new RegExp(`^${good[1]},,acme,,,,disabled,`));
    const stdoutExport = await runMmgw(['device', 'export', '--data', data]);
    assert.equal(stdoutExport.stdout, readFileSync(out, 'utf8'));

    // The export imports into a fresh registry unchanged.
    const other = tempDir(t);
    const back = await runMmgw(['device', 'import', out, '--data', other, '--json']);
    assert.equal(JSON.parse(back.stdout).written, 3);
    assert.equal(JSON.parse(back.stdout).secretsNotSaved, 3);
    const copied = await runMmgw(['device', 'show', good[0], '--data', other, '--json']);
    assert.equal(JSON.parse(copied.stdout).device.profile, 'basic');
  });

  test('import as a job: dry run, row cap, the result fetched after the fact (secrets once), a retry under --job-id', async (t) => {
    const data = tempDir(t);
    const file = join(data, 'devices.csv');
    const imeis = [luhnImei('35000000000011'), luhnImei('35000000000012')];
    writeFileSync(file, ['imei,operator', ...imeis.map((i) => `${i},acme`)].join('\n') + '\n');
    const json = (r: { stdout: string }) => JSON.parse(r.stdout);

    const dry = await runMmgw(['device', 'import', file, '--dry-run', '--data', data, '--json']);
    assert.equal(dry.code, 0, dry.stderr);
    assert.deepEqual(
      [json(dry).dryRun, json(dry).written, json(dry).wouldWrite, json(dry).job],
      [true, 0, 2, undefined],
    );
    const capped = await runMmgw(['device', 'import', file, '--max-rows', '1', '--data', data, '--json']);
    assert.equal(capped.code, 2);
    assert.equal(json(capped).error.code, 'api.too_large');
    assert.match(json(capped).error.message, /more than 1 rows \(--max-rows\)/);
    assert.equal(json(await runMmgw(['device', 'list', '--data', data, '--json'])).devices.length, 0);

    // The import's own output is lost (no --secrets-out): the job keeps the result and the secrets.
    const run = await runMmgw(['device', 'import', file, '--job-id', 'batch-1', '--data', data, '--json']);
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual([json(run).job, json(run).written, json(run).secretsNotSaved], ['batch-1', 2, 2]);
    assert.match(run.stderr, /import job batch-1: writing/);
    const listed = json(await runMmgw(['device', 'imports', '--data', data, '--json'])).jobs;
    assert.deepEqual(
      listed.map((j: { id: string; state: string; secrets: string }) => [j.id, j.state, j.secrets]),
      [['batch-1', 'done', 'sealed']],
    );
    const retry = await runMmgw(['device', 'import', file, '--job-id', 'batch-1', '--data', data, '--json']);
    assert.equal(retry.code, 0, retry.stderr);
    assert.deepEqual([json(retry).replayed, json(retry).written, json(retry).rejectedCount], [true, 2, 0]);

    const secrets = join(data, 'secrets.csv');
    const fetched = await runMmgw([
      'device',
      'import-result',
      'batch-1',
      '--secrets-out',
      secrets,
      '--data',
      data,
    ]);
    assert.equal(fetched.code, 0, fetched.stderr);
    assert.match(
      fetched.stdout,
      /^job batch-1: done; all-or-nothing: wrote 2 of 2 rows; 0 rejected; by cli:/m,
    );
    const lines = readFileSync(secrets, 'utf8').trim().split('\n');
    assert.deepEqual(
      lines.map((l) => l.split(',')[0]),
      ['imei', ...imeis],
    );
    assert.equal(statSync(secrets).mode & 0o777, 0o600);
    const secret = lines[1]?.split(',')[1] ?? '';
    assert.match(secret, /^[A-Za-z0-9_-]{43}$/, 'byte-exact, no spreadsheet guard on a secret');
    const once = await runMmgw(['device', 'import-result', 'batch-1', '--data', data, '--json']);
    assert.deepEqual([json(once).secrets, json(once).secretsFile], ['delivered', null]);
    const none = await runMmgw(['device', 'import-result', 'no-such-job', '--data', data, '--json']);
    assert.equal(none.code, 2);
    assert.equal(json(none).error.code, 'registry.not_found');
  });

  test('import refuses a file without a proper header', async (t) => {
    const data = tempDir(t);
    const file = join(data, 'bad.csv');
    writeFileSync(file, `${luhnImei('35000000000001')},acme\n`);
    const noHeader = await runMmgw(['device', 'import', file, '--data', data, '--json']);
    assert.equal(noHeader.code, 2);
    assert.equal(JSON.parse(noHeader.stdout).error.code, 'registry.import_rejected');
    writeFileSync(file, 'imei,operator,colour\n');
    const unknown = await runMmgw(['device', 'import', file, '--data', data]);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown column "colour"/);
  });
});

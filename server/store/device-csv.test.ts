import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  CsvParser,
  CsvRecordTooLong,
  csvField,
  csvLine,
  csvLineVerbatim,
  DeviceCsvError,
  DEVICE_CSV_COLUMNS,
  DEVICE_CSV_HEADER_HELP,
  DEVICE_CSV_TEMPLATE,
  deviceCsvHeader,
  deviceCsvLine,
  parseCsv,
  readDeviceCsv,
  readDeviceCsvStream,
  screenImportRows,
} from './device-csv.ts';
import type { Device } from './records.ts';
import { type ImportRow, importRowProblem } from './registry.ts';

const IMEI_A = '490154203237518';
const IMEI_B = '356938035643809';

function rowsOf(text: string): ImportRow[] {
  const read = readDeviceCsv(text);
  assert.ok(read.ok, JSON.stringify(read));
  return read.rows;
}

function problemOf(text: string) {
  const read = readDeviceCsv(text);
  assert.ok(!read.ok, 'the header is refused');
  return read.problem;
}

describe('CSV (RFC 4180)', () => {
  test('quotes only the fields that need it, and doubles a quote inside', () => {
    assert.equal(csvField('plain'), 'plain');
    assert.equal(csvField(undefined), '');
    assert.equal(csvField(42), '42');
    assert.equal(csvField('a,b'), '"a,b"');
    assert.equal(csvField('say "hi"'), '"say ""hi"""');
    assert.equal(csvField('two\nlines'), '"two\nlines"');
    assert.equal(csvField('cr\r'), '"cr\r"');
    assert.equal(csvLine(['a', undefined, 'b,c', 3]), 'a,,"b,c",3\n');
  });

  test('parses quoted fields, CRLF and LF, a byte order mark, and skips blank lines; each record knows its line', () => {
    const text = '\ufeffh1,h2\r\n"a,1","say ""hi"""\r\n\r\n"multi\nline",x\nlast,';
    assert.deepEqual(parseCsv(text), [
      { line: 1, fields: ['h1', 'h2'] },
      { line: 2, fields: ['a,1', 'say "hi"'] },
      { line: 4, fields: ['multi\nline', 'x'] },
      { line: 6, fields: ['last', ''] },
    ]);
    assert.deepEqual(parseCsv('""\n'), [{ line: 1, fields: [''] }], 'an empty quoted field is a record');
    assert.deepEqual(parseCsv(''), []);
  });

  test('round trip: whatever csvLine writes, parseCsv reads back', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.array(fc.string({ unit: fc.constantFrom('a', ',', '"', '\n', '\r', ' ', 'é') }), {
            minLength: 2,
          }),
          {
            minLength: 1,
            maxLength: 5,
          },
        ),
        (records) => {
          const parsed = parseCsv(records.map((r) => csvLine(r)).join(''));
          // Cells a spreadsheet would take for a formula come back with the ' the writer put in front.
          assert.deepEqual(
            parsed.map((r) => r.fields),
            records.map((r) => r.map((f) => (/^[\r]/.test(f) ? `'${f}` : f))),
          );
          const verbatim = parseCsv(records.map((r) => csvLineVerbatim(r)).join(''));
          assert.deepEqual(
            verbatim.map((r) => r.fields),
            records,
          );
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('CSV in chunks', () => {
  /** Splits text at the given cut points and feeds the pieces to one parser. */
  function parseInPieces(text: string, cuts: number[]) {
    const parser = new CsvParser(Number.POSITIVE_INFINITY);
    const points = [...new Set(cuts.map((c) => c % (text.length + 1)))].sort((a, b) => a - b);
    const out = [];
    let from = 0;
    for (const at of [...points, text.length]) {
      out.push(...parser.push(text.slice(from, at)));
      from = at;
    }
    return [...out, ...parser.end()];
  }

  test('a quote, a doubled quote, a CRLF and a byte order mark split between chunks read as in one piece', () => {
    const text = '\ufeffh1,h2\r\n"a,""1""","x\r\ny"\r\n\r\nlast,';
    const whole = parseCsv(text);
    assert.deepEqual(whole, [
      { line: 1, fields: ['h1', 'h2'] },
      { line: 2, fields: ['a,"1"', 'x\r\ny'] },
      { line: 5, fields: ['last', ''] },
    ]);
    for (let i = 0; i <= text.length; i++)
      for (let j = i; j <= text.length; j++)
        assert.deepEqual(parseInPieces(text, [i, j]), whole, `cut at ${i}, ${j}`);
  });

  test('any split of any input parses the same as the whole', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: fc.constantFrom('a', ',', '"', '\n', '\r', ' ', '\ufeff') }),
        fc.array(fc.nat(), { maxLength: 6 }),
        (text, cuts) => {
          assert.deepEqual(parseInPieces(text, cuts), parseCsv(text));
        },
      ),
      { numRuns: 500 },
    );
  });

  test('a record longer than the limit is refused with the line it starts on (an unclosed quote)', () => {
    const parser = new CsvParser(100);
    assert.deepEqual(parser.push('imei,operator\n'), [{ line: 1, fields: ['imei', 'operator'] }]);
    parser.push('1,"open quote\n');
    assert.throws(
      () => parser.push('x'.repeat(50) + '\n' + 'y'.repeat(50)),
      (err: unknown) => err instanceof CsvRecordTooLong && err.line === 2 && err.limit === 100,
    );
  });
});

describe('CSV cells for spreadsheets (OWASP CSV injection)', () => {
  test('a text beginning with = + - @ tab or CR gets a leading quote; numbers and other text do not', () => {
    assert.equal(csvField('=HYPERLINK("http://x","y")'), `"'=HYPERLINK(""http://x"",""y"")"`);
    assert.equal(csvField('+1'), "'+1");
    assert.equal(csvField('-op'), "'-op");
    assert.equal(csvField('@sum(1)'), "'@sum(1)");
    assert.equal(csvField('\tx'), "'\tx");
    assert.equal(csvField('\rx'), `"'\rx"`);
    assert.equal(csvField(-5), '-5');
    assert.equal(csvField('a-b'), 'a-b');
    assert.equal(csvField("'quoted"), "'quoted");
    assert.equal(csvLineVerbatim(['490154203237518', '-secret_x']), '490154203237518,-secret_x\n');
  });

  test('an export of such a value is refused on import with the reason, never stripped', () => {
    const device: Device = { imei: IMEI_A, operator: '-acme', status: 'enabled', createdAt: 0 };
    const line = deviceCsvLine(device);
    assert.match(line, /^490154203237518,,'-acme,/);
    const read = readDeviceCsv(deviceCsvHeader() + line);
    assert.ok(read.ok);
    assert.deepEqual(read.rows, []);
    assert.equal(read.rejected.length, 1);
    assert.equal(read.rejected[0]?.field, 'operator');
    assert.equal(read.rejected[0]?.imei, IMEI_A);
    assert.match(read.rejected[0]?.reason ?? '', /operator "'-acme" begins with the ' that an export puts/);
  });
});

describe('readDeviceCsvStream', () => {
  async function* bytes(...parts: string[]) {
    const all = new TextEncoder().encode(parts.join(''));
    // Split inside a multi-byte character as well: é is two bytes.
    for (let i = 0; i < all.length; i += 7) yield all.subarray(i, i + 7);
  }
  async function collect(chunks: AsyncIterable<Uint8Array | string>, max?: number) {
    const out = [];
    for await (const batch of readDeviceCsvStream(chunks, max)) out.push(...batch);
    return out;
  }

  test('rows and rejections in file order, from bytes cut anywhere', async () => {
    const items = await collect(
      bytes(`imei,operator,model\n${IMEI_A},acme,caf\u00e9\nshort\n${IMEI_B},"ac\nme",x`),
    );
    assert.deepEqual(items, [
      { row: { line: 2, imei: IMEI_A, operator: 'acme', model: 'caf\u00e9' } },
      { rejected: { line: 3, code: 'registry.invalid_field', reason: 'expected 3 fields, found 1' } },
      { row: { line: 4, imei: IMEI_B, operator: 'ac\nme', model: 'x' } },
    ]);
  });

  test('a file that cannot be imported throws DeviceCsvError with the problem', async () => {
    const problem = async (chunks: AsyncIterable<Uint8Array | string>, max?: number) => {
      try {
        await collect(chunks, max);
      } catch (err) {
        assert.ok(err instanceof DeviceCsvError, String(err));
        return err.problem;
      }
      assert.fail('no error');
    };
    assert.deepEqual(await problem(bytes('')), { message: 'a header line is required', field: 'body' });
    assert.deepEqual(await problem(bytes('imei,colour\n')), {
      line: 1,
      message: 'unknown column "colour"',
      field: 'colour',
    });
    assert.deepEqual(await problem(bytes(`imei,operator\n${IMEI_A},"never closed\n`, 'x'.repeat(200)), 100), {
      line: 2,
      message: 'the record is longer than 100 characters (a quote left open?)',
      field: 'body',
    });
  });
});

describe('device CSV', () => {
  const device: Device = {
    imei: IMEI_A,
    imsi: '310150123456789',
    operator: 'acme, inc',
    profile: 'gold',
    operatorProfile: 'acme-std',
    model: 'n95',
    status: 'disabled',
    createdAt: Date.UTC(2026, 0, 31, 12),
    lastSeenAt: Date.UTC(2026, 1, 1),
  };

  test('one column set: the export header, and the template is it less the registry-kept dates', () => {
    assert.equal(
      deviceCsvHeader(),
      'imei,imsi,operator,operatorProfile,serviceProfile,model,status,createdAt,lastSeenAt\n',
    );
    assert.deepEqual(DEVICE_CSV_TEMPLATE, DEVICE_CSV_COLUMNS.slice(0, 7));
    assert.match(
      DEVICE_CSV_HEADER_HELP,
      /^imei,operator required; imsi,operatorProfile,serviceProfile,model,status,secret optional/,
    );
  });

  test('an export line reads back as the same device (profile is the service profile)', () => {
    const line = deviceCsvLine(device);
    assert.equal(
      line,
      `${IMEI_A},310150123456789,"acme, inc",acme-std,gold,n95,disabled,2026-01-31T12:00:00.000Z,2026-02-01T00:00:00.000Z\n`,
    );
    // The dates are the registry's own: an import reads past them.
    const { createdAt: _created, lastSeenAt: _seen, ...fields } = device;
    assert.deepEqual(rowsOf(deviceCsvHeader() + line), [{ line: 2, ...fields }]);
    // Optional fields left out stay out.
    const bare: Device = { imei: IMEI_B, operator: 'acme', status: 'enabled', createdAt: 0 };
    assert.deepEqual(rowsOf(deviceCsvHeader() + deviceCsvLine(bare)), [
      { line: 2, imei: IMEI_B, operator: 'acme', status: 'enabled' },
    ]);
  });

  test('the CLI’s old header still imports: profile is read as serviceProfile, any column order, spaces trimmed', () => {
    const rows = rowsOf(
      `imei,imsi,operator,profile,status,createdAt\n${IMEI_A},,acme,basic,enabled,2026-01-01T00:00:00.000Z\n`,
    );
    assert.deepEqual(rows, [
      { line: 2, imei: IMEI_A, operator: 'acme', profile: 'basic', status: 'enabled' },
    ]);
    assert.deepEqual(rowsOf(` status , operator,imei,secret\nenabled,acme, ${IMEI_B} ,${'s'.repeat(32)}\n`), [
      { line: 2, imei: IMEI_B, operator: 'acme', status: 'enabled', secret: 's'.repeat(32) },
    ]);
  });

  test('a bad header refuses the whole file, naming the column at fault and its line', () => {
    assert.deepEqual(problemOf(''), { message: 'a header line is required', field: 'body' });
    assert.deepEqual(problemOf('\nimei,operator,colour,size\n'), {
      line: 2,
      message: 'unknown column "colour", "size"',
      field: 'colour',
    });
    assert.deepEqual(problemOf('imei,imsi\n'), {
      line: 1,
      message: 'the header must name operator',
      field: 'operator',
    });
    assert.deepEqual(problemOf('imei,operator,imei\n'), {
      line: 1,
      message: 'a column is named twice',
      field: 'body',
    });
    assert.deepEqual(problemOf('imei,operator,profile,serviceProfile\n'), {
      line: 1,
      message: 'profile and serviceProfile are the same column',
      field: 'profile',
    });
  });

  test('a row with the wrong number of fields is rejected with its line; the others are read', () => {
    const read = readDeviceCsv(`imei,operator\n${IMEI_A},acme\ntoo,many,fields\n${IMEI_B},acme\n`);
    assert.ok(read.ok);
    assert.deepEqual(
      read.rows.map((r) => [r.line, r.imei]),
      [
        [2, IMEI_A],
        [4, IMEI_B],
      ],
    );
    assert.deepEqual(read.rejected, [
      { line: 3, code: 'registry.invalid_field', reason: 'expected 2 fields, found 3' },
    ]);
  });
});

describe('screenImportRows', () => {
  const rows = rowsOf(
    [
      'imei,operator,serviceProfile',
      `${IMEI_A},acme,gold`, // line 2: fine
      '490154203237519,acme,', // line 3: bad check digit
      `${IMEI_A},acme,`, // line 4: twice in the input
      `${IMEI_B},acme,`, // line 5: in the registry already
      '352099001761481,acme,nope', // line 6: unknown reference
    ].join('\n'),
  );

  test('checks the row, then references, then repeats in the input, then the registry', () => {
    const progress: number[] = [];
    const { good, rejected } = screenImportRows(rows, importRowProblem, {
      exists: (imei) => imei === IMEI_B,
      refProblem: (row) =>
        row.profile === 'nope'
          ? {
              line: row.line,
              imei: row.imei,
              code: 'registry.invalid_field',
              reason: 'no such profile',
              field: 'serviceProfile',
            }
          : undefined,
      source: 'file',
      onProgress: (n) => progress.push(n),
    });
    assert.deepEqual(
      good.map((r) => r.line),
      [2],
    );
    assert.deepEqual(
      rejected.map((r) => [r.line, r.code, r.field, r.reason]),
      [
        [3, 'registry.invalid_imei', 'imei', 'IMEI 490154203237519: check digit should be 8'],
        [4, 'registry.duplicate', 'imei', `IMEI ${IMEI_A} appears twice in the file (first on line 2)`],
        [5, 'registry.duplicate', 'imei', `IMEI ${IMEI_B} is already in the registry`],
        [6, 'registry.invalid_field', 'serviceProfile', 'no such profile'],
      ],
    );
    assert.deepEqual(progress, [], 'progress comes every 1,000 rows');
  });

  test('a row refused for its reference does not count as the first of its IMEI', () => {
    const twice = rowsOf(`imei,operator,model\n${IMEI_A},acme,bad\n${IMEI_A},acme,\n`);
    const { good, rejected } = screenImportRows(twice, importRowProblem, {
      exists: () => false,
      refProblem: (row) =>
        row.model === 'bad'
          ? { line: row.line, code: 'registry.invalid_field', reason: 'bad model' }
          : undefined,
      source: 'import',
    });
    assert.deepEqual(
      good.map((r) => r.line),
      [3],
    );
    assert.deepEqual(
      rejected.map((r) => r.line),
      [2],
    );
  });

  test('reports progress every 1,000 rows', () => {
    const many: ImportRow[] = Array.from({ length: 2500 }, (_, i) => ({
      line: i + 2,
      imei: IMEI_A,
      operator: 'acme',
    }));
    const progress: number[] = [];
    const { rejected } = screenImportRows(many, importRowProblem, {
      exists: () => false,
      source: 'import',
      onProgress: (n) => progress.push(n),
    });
    assert.deepEqual(progress, [1000, 2000]);
    assert.equal(rejected.length, 2499);
    assert.match(rejected[0]?.reason ?? '', /appears twice in the import \(first on line 2\)/);
  });
});

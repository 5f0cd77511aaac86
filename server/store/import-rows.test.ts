import assert from 'node:assert/strict';
import { test } from 'node:test';
import { importRowProblem, prepareImportRow, screenImportRows, sortRejections } from './import-rows.ts';
import { DEVICE_RECORD_VERSION } from './records.ts';
import { verifyDeviceSecret } from './secrets.ts';

const IMEI = '356938035643809';
const OTHER = '490154203237518';

test('a row is checked field by field, the first problem named with its column and line', () => {
  assert.equal(importRowProblem({ imei: IMEI, operator: 'op' }), undefined);
  assert.equal(
    importRowProblem({ imei: '356938035643808', operator: 'op', line: 4 })?.code,
    'registry.invalid_imei',
  );
  assert.deepEqual(
    { ...importRowProblem({ imei: IMEI, imsi: '12', operator: 'op', line: 7 }), reason: '' },
    { line: 7, imei: IMEI, code: 'registry.invalid_imsi', field: 'imsi', reason: '' },
  );
  assert.equal(importRowProblem({ imei: IMEI, operator: '' })?.field, 'operator');
  assert.equal(importRowProblem({ imei: IMEI, operator: 'op', model: 'a b' })?.field, 'model');
  assert.equal(importRowProblem({ imei: IMEI, operator: 'x'.repeat(65) })?.field, 'operator');
  assert.equal(importRowProblem({ imei: IMEI, operator: 'op', status: 'gone' as never })?.field, 'status');
  // A provisioned secret must carry 128 bits.
  assert.equal(importRowProblem({ imei: IMEI, operator: 'op', secret: 'a'.repeat(21) })?.field, 'secret');
  assert.equal(importRowProblem({ imei: IMEI, operator: 'op', secret: 'a'.repeat(22) }), undefined);
});

test('screening rejects bad rows and repeated IMEIs, naming the first line', () => {
  const { rejected, candidates } = screenImportRows([
    { imei: IMEI, operator: 'op', line: 2 },
    { imei: 'nope', operator: 'op', line: 3 },
    { imei: IMEI, operator: 'op', line: 4 },
    { imei: OTHER, operator: 'op', line: 5 },
  ]);
  assert.deepEqual(
    candidates.map((r) => r.line),
    [2, 5],
  );
  assert.deepEqual(
    rejected.map((r) => [r.line, r.code]),
    [
      [3, 'registry.invalid_imei'],
      [4, 'registry.duplicate'],
    ],
  );
  assert.match(rejected[1]?.reason ?? '', /first on line 2/);
});

test('a prepared row keeps only the hash of its secret, generated when the row has none', () => {
  const given = 'a'.repeat(22);
  const own = prepareImportRow({ imei: IMEI, operator: 'op', secret: given, model: 'm', line: 9 }, 1000);
  assert.equal(own.secret, given);
  assert.equal(own.line, 9);
  assert.deepEqual(
    { ...own.record, secretHash: '' },
    {
      v: DEVICE_RECORD_VERSION,
      imei: IMEI,
      operator: 'op',
      status: 'enabled',
      createdAt: 1000,
      secretHash: '',
      model: 'm',
    },
  );
  assert.ok(verifyDeviceSecret(given, own.record.secretHash));
  const generated = prepareImportRow({ imei: OTHER, operator: 'op', status: 'disabled' }, 0);
  assert.ok(generated.secret.length >= 22);
  assert.equal(generated.record.status, 'disabled');
  assert.ok(verifyDeviceSecret(generated.secret, generated.record.secretHash));
  assert.ok(!('line' in generated));
});

test('rejections sort by line', () => {
  const sorted = sortRejections([
    { line: 5, code: 'registry.duplicate', reason: '' },
    { line: 2, code: 'registry.duplicate', reason: '' },
  ]);
  assert.deepEqual(
    sorted.map((r) => r.line),
    [2, 5],
  );
});

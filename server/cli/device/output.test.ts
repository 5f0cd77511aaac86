import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { tempDir } from '../../../testing/index.ts';
import type { Device } from '../../store/records.ts';
import { describeDevice, deviceTable, writeAtomically } from './output.ts';

const base = {
  imei: '356938035643809',
  operator: 'acme',
  status: 'enabled',
  createdAt: Date.UTC(2024, 0, 2, 3, 4, 5),
} as Device;

test('a handset is described field by field, leaving out what it lacks', () => {
  assert.equal(
    describeDevice(base),
    'imei       356938035643809\noperator   acme\nstatus     enabled\n' +
      'created    2024-01-02T03:04:05.000Z\nlast seen  never\n',
  );
  assert.match(
    describeDevice({ ...base, imsi: '001010123456789', lastSeenAt: 0 }),
    /^imsi {7}001010123456789$/m,
  );
});

test('the table pads every column to its widest cell', () => {
  const lines = deviceTable([
    base,
    { ...base, imei: '1', operator: 'a-much-longer-name', profile: 'p' },
  ]).split('\n');
  assert.equal(
    lines[0],
    'IMEI             IMSI  OPERATOR            PROFILE  STATUS   CREATED              LAST SEEN',
  );
  assert.equal(
    lines[1],
    '356938035643809  -     acme                -        enabled  2024-01-02T03:04:05  never',
  );
  assert.equal(
    lines[2],
    '1                -     a-much-longer-name  p        enabled  2024-01-02T03:04:05  never',
  );
});

test('a file is written whole under its mode, with no temporary left beside it', (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'secrets.csv');
  writeAtomically(path, ['a,b\n', '1,2\n'], 0o600);
  assert.equal(readFileSync(path, 'utf8'), 'a,b\n1,2\n');
  assert.equal(statSync(path).mode & 0o777, 0o600);
  assert.deepEqual(readdirSync(dir), ['secrets.csv']);
  function* failing(): Generator<string> {
    yield 'half';
    throw new Error('interrupted');
  }
  assert.throws(() => writeAtomically(path, failing()), /interrupted/);
  assert.equal(readFileSync(path, 'utf8'), 'a,b\n1,2\n');
});

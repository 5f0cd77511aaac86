import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { tempDir } from '../../../testing/index.ts';
import { checkImeiArg, withRegistry } from './options.ts';

test('an IMEI argument with a wrong check digit is a typed error naming the field', () => {
  assert.throws(() => checkImeiArg('356938035643808'), { code: 'registry.invalid_imei', field: 'imei' });
  checkImeiArg('356938035643809');
});

test('a read opens only an existing registry; a write creates one, and both close it', async (t) => {
  const data = join(tempDir(t), 'data');
  await assert.rejects(withRegistry({ data }, async () => 0, 'read'));
  assert.equal(existsSync(join(data, 'registry', 'data.mdb')), false);
  let seen: unknown;
  await withRegistry({ data }, async (r) => {
    seen = r;
    await r.addDevice({ imei: '356938035643809', operator: 'acme' });
  });
  assert.equal(
    await withRegistry({ data }, async (r) => r.getDevice('356938035643809')?.operator, 'read'),
    'acme',
  );
  await assert.rejects(async () => (seen as { getDevice(i: string): unknown }).getDevice('356938035643809'));
});

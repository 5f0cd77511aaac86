import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { GatewayError } from '../../device-protocol/errors.ts';
import { Registry } from './registry.ts';
import { exportHeader, exportLine, parseExport } from './registry-transfer.ts';

const fixture = fileURLToPath(
  new URL('../../testing/store/fixtures/registry-export-v0.jsonl', import.meta.url),
);
/** The secret whose hash the fixture's devices carry. */
const FIXTURE_SECRET = 'fixture-secret-0123456789abcdefghij';

async function registryIn(t: { after(fn: () => Promise<void>): void }): Promise<Registry> {
  const dir = mkdtempSync(join(tmpdir(), 'mmgw-transfer-'));
  const registry = await Registry.open(dir);
  t.after(async () => {
    await registry.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return registry;
}

function code(c: string) {
  return (err: unknown) => err instanceof GatewayError && err.code === c;
}

test('a registry exported and imported elsewhere is the same registry', async (t) => {
  const source = await registryIn(t);
  const { secret } = await source.addDevice({
    imei: '356938035643809',
    imsi: '26201123456789',
    operator: 'acme',
  });
  await source.addAdminUser({ name: 'root', role: 'admin', password: 'correct horse battery' });
  await source.putRef('operators', 'acme', { name: 'ACME' }, { mode: 'create' });
  await source.putDeviceAccount('356938035643809', {
    label: 'work',
    service: 'mail',
    user: 'alice',
    secret: 'sealed:opaque',
  });
  const text = [exportHeader(1), ...[...source.exportRecords()].map(exportLine)].join('\n') + '\n';
  const target = await registryIn(t);
  assert.deepEqual(await target.importRecords(parseExport(text)), { written: 4 });
  assert.deepEqual([...target.exportRecords()], [...source.exportRecords()]);
  assert.equal(target.authenticate('356938035643809', secret).imei, '356938035643809');
  assert.ok(await target.verifyAdminPassword('root', 'correct horse battery'));
  assert.deepEqual(
    [...target.iterateDevicesByImsi('262011')].map((d) => d.imei),
    ['356938035643809'],
  );
  assert.equal(target.getDeviceAccount('356938035643809', 'work')?.secret, 'sealed:opaque');
  // Importing again refuses the whole file: nothing is overwritten.
  await assert.rejects(target.importRecords(parseExport(text)), code('registry.duplicate'));
});

test('records an older release wrote (fixture) are read and upgraded', async (t) => {
  const records = parseExport(readFileSync(fixture, 'utf8'));
  const target = await registryIn(t);
  await target.importRecords(records);
  // v0: no `v`, no status (every device was enabled then).
  assert.equal(target.authenticate('356938035643809', FIXTURE_SECRET).status, 'enabled');
  assert.throws(() => target.authenticate('490154203237518', FIXTURE_SECRET), code('auth.disabled'));
  assert.deepEqual(target.getAdminUser('root'), { name: 'root', role: 'admin', createdAt: 0 });
  assert.equal(target.getRef('operators', 'acme')?.data.name, 'ACME Mobile');
  assert.equal(target.listDeviceAccounts('356938035643809').length, 1);
  // Written back in the current version.
  const device = [...target.exportRecords()].find((r) => r.key === '356938035643809');
  assert.equal((device?.value as { v?: number } | undefined)?.v, 1);
});

test('a bad export is refused before anything is written, naming the line', () => {
  const header = exportHeader(1);
  const device = readFileSync(fixture, 'utf8').split('\n')[1]!;
  const cases: Array<[string, RegExp]> = [
    ['', /line 1/],
    ['{"format":"other"}', /line 1: not a registry export/],
    ['{"format":"mmgw-registry","v":99}', /newer/],
    [`${header}\nnot json`, /line 2: not JSON/],
    [`${header}\n{"table":"secrets","key":"x","value":{}}`, /line 2: unknown table/],
    [`${header}\n${device.replace('"key":"356938035643809"', '"key":"1"')}`, /line 2: key 1 does not match/],
    [`${header}\n${device}\n${device}`, /line 3: .*twice/],
    [`${header}\n{"table":"devices","key":"1","value":{"imei":"1"}}`, /line 2: device record lacks/],
  ];
  for (const [text, message] of cases) {
    assert.throws(
      () => parseExport(text),
      (e) => e instanceof GatewayError && e.code === 'registry.bad_record' && message.test(e.message),
      text,
    );
  }
});

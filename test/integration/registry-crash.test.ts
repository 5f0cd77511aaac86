import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Registry } from '../../server/store/registry.ts';
import { runAndKill } from '../../testing/index.ts';

/**
 * kill -9 during imports: every importDevices call is one lmdb transaction,
 * so after the crash each batch is either complete or absent, and the
 * environment opens cleanly.
 */

test('kill -9 between and during 5000-row import batches leaves whole batches only', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mmgw-crash-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const batches = 10;
  const size = 5000;
  // Killed right after batch 2 is reported: batch 3 is being prepared or committed at that moment.
  const lines = await runAndKill(['import', dir, String(batches), String(size)], (l) => l === 'batch 2');
  assert.ok(lines.includes('batch 2'));

  const registry = await Registry.open(dir);
  t.after(() => registry.close());
  const perBatch = new Map<string, number>();
  for (const d of registry.iterateDevices()) perBatch.set(d.operator, (perBatch.get(d.operator) ?? 0) + 1);
  for (let i = 0; i < batches; i++) {
    const n = perBatch.get(`batch-${i}`) ?? 0;
    assert.ok(n === 0 || n === size, `batch-${i} has ${n} of ${size} devices`);
    if (i <= 2) assert.equal(n, size, `batch-${i} was reported committed`);
  }
  // The environment is usable after the crash.
  const { secret } = await registry.addDevice({ imei: '356938035643809', operator: 'after' });
  assert.equal(registry.authenticate('356938035643809', secret).operator, 'after');
});

test('kill -9 during one 50,000-row import leaves all of it or none', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mmgw-crash-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  // Killed halfway through the puts, inside the open write transaction.
  const lines = await runAndKill(['bulk', dir, '50000'], (l) => l === 'progress 25000');
  assert.ok(lines.includes('progress 25000'));
  const registry = await Registry.open(dir);
  t.after(() => registry.close());
  const n = registry.countDevices();
  assert.ok(n === 0 || n === 50_000, `found ${n} devices`);
  t.diagnostic(`${n} devices survived; the child printed ${lines.at(-1)}`);
  await registry.addDevice({ imei: '356938035643809', operator: 'after' });
  assert.equal(registry.countDevices(), n + 1);
});

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import {
  freshTableName,
  readRec,
  sharedStateCases,
} from '../../../testing/store/shared-state-conformance.ts';
import { LmdbSharedState } from './lmdb.ts';

describe('shared-state conformance: lmdb', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mmgw-shared-lmdb-'));
  const state = new LmdbSharedState(join(dir, 'shared'));
  after(async () => {
    await state.close();
    rmSync(dir, { recursive: true, force: true });
  });
  for (const c of sharedStateCases) {
    test(c.name, () => c.run({ a: state, b: state, crossWatch: true }, freshTableName()));
  }
});

test('lmdb: records and revisions survive closing and opening again', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mmgw-shared-lmdb-'));
  try {
    const first = new LmdbSharedState(join(dir, 'shared'));
    const t1 = await first.table('devices', { read: readRec });
    const written = await t1.create('1', { v: 1, n: 1 });
    await first.close();
    const second = new LmdbSharedState(join(dir, 'shared'));
    const t2 = await second.table('devices', { read: readRec });
    assert.deepEqual(t2.get('1'), written);
    const next = await t2.update('1', { v: 1, n: 2 }, written.revision);
    assert.ok(next.revision > written.revision);
    await second.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

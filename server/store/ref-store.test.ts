import assert from 'node:assert/strict';
import { test } from 'node:test';
import { tempLmdbEnv } from '../../testing/store/lmdb-env.ts';
import { GatewayError } from '../../device-protocol/errors.ts';
import type { Database } from 'lmdb';
import { REF_RECORD_VERSION, RefStore, type StoredRef } from './ref-store.ts';
import { LmdbRegistryTable } from './registry-table.ts';

function code(c: string) {
  return (err: unknown) => err instanceof GatewayError && err.code === c;
}

function store(t: Parameters<typeof tempLmdbEnv>[0]) {
  const refs: Database<StoredRef, string[]> = tempLmdbEnv(t).openDB({ name: 'refdata' });
  let now = 100;
  let open = true;
  const refStore = new RefStore({
    refs: new LmdbRegistryTable(refs as never, 'pair', (raw) => raw as StoredRef),
    now: () => now,
    assertOpen: () => {
      if (!open) throw new GatewayError('internal', 'closed');
    },
  });
  return { refs, refStore, advance: () => (now += 10), close: () => (open = false) };
}

test('create, replace with the right revision, list by kind, remove', async (t) => {
  const { refs, refStore, advance } = store(t);
  const created = await refStore.put('operators', 'op1', { name: 'One' }, { mode: 'create' });
  assert.deepEqual(created, {
    after: {
      kind: 'operators',
      id: 'op1',
      revision: 1,
      createdAt: 100,
      updatedAt: 100,
      data: { name: 'One' },
    },
  });
  assert.equal(refs.get(['operators', 'op1'])?.v, REF_RECORD_VERSION);
  await refStore.put('profiles', 'p', {}, { mode: 'create' });
  advance();
  // A stale revision writes nothing.
  assert.equal(
    await refStore.put('operators', 'op1', { name: 'Two' }, { mode: 'replace', revision: 7 }),
    undefined,
  );
  const replaced = await refStore.put('operators', 'op1', { name: 'Two' }, { mode: 'replace', revision: 1 });
  assert.equal(replaced?.before?.revision, 1);
  assert.deepEqual(
    [replaced?.after.revision, replaced?.after.createdAt, replaced?.after.updatedAt],
    [2, 100, 110],
  );
  assert.deepEqual(
    refStore.list('operators').map((r) => r.data),
    [{ name: 'Two' }],
  );
  assert.equal((await refStore.remove('operators', 'op1')).revision, 2);
  assert.equal(refStore.get('operators', 'op1'), undefined);
});

test('refusals: create over an existing one, replace or remove of a missing one, a closed store', async (t) => {
  const { refStore, close } = store(t);
  await refStore.put('operators', 'op1', {}, { mode: 'create' });
  await assert.rejects(refStore.put('operators', 'op1', {}, { mode: 'create' }), code('registry.duplicate'));
  await assert.rejects(
    refStore.put('operators', 'nope', {}, { mode: 'replace' }),
    code('registry.not_found'),
  );
  await assert.rejects(refStore.remove('operators', 'nope'), code('registry.not_found'));
  close();
  assert.throws(() => refStore.list('operators'), code('internal'));
});

test('a stored record without data reads with empty data', async (t) => {
  const { refs, refStore } = store(t);
  await refs.put(['operators', 'old'], {
    kind: 'operators',
    id: 'old',
    revision: 3,
    createdAt: 1,
    updatedAt: 2,
  } as never);
  assert.deepEqual(refStore.get('operators', 'old')?.data, {});
});

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { LmdbSharedState } from '../../store/shared/lmdb.ts';
import { PairRecords } from './pair-records.ts';
import { TransportStorage } from './transport-storage.ts';

const dir = mkdtempSync(join(tmpdir(), 'mmgw-pair-records-'));
after(() => rmSync(dir, { recursive: true, force: true }));

interface Note {
  text: string;
  at: number;
}

const readNote = (raw: unknown): Note | undefined => {
  const r = raw as { v?: unknown; text?: unknown; at?: unknown } | null;
  if (r?.v !== 3 || typeof r.text !== 'string' || typeof r.at !== 'number') return undefined;
  return { text: r.text, at: r.at };
};
const open = (storage: TransportStorage, name = 'test.notes') =>
  new PairRecords<Note>(storage, name, { version: 3, read: readNote, at: (n) => n.at });

test('records survive a reopen, stored with their version; an owner’s range never takes in another’s', async () => {
  let storage = TransportStorage.open(dir);
  let notes = open(storage);
  for (const owner of ['o', 'o/x', 'oa', 'o\u0000']) await notes.put(owner, 'n1', { text: owner, at: 1 });
  await notes.put('o', 'n2', { text: 'second', at: 2 });
  await storage.close();

  storage = TransportStorage.open(dir);
  notes = open(storage);
  assert.deepEqual(storage.database<unknown, [string, string]>('test.notes').get(['o', 'n2']), {
    v: 3,
    text: 'second',
    at: 2,
  });
  assert.deepEqual(notes.list('o'), [
    { id: 'n1', record: { text: 'o', at: 1 } },
    { id: 'n2', record: { text: 'second', at: 2 } },
  ]);
  await notes.removeOwner('o');
  assert.deepEqual(notes.list('o'), []);
  for (const owner of ['o/x', 'oa', 'o\u0000']) assert.equal(notes.get(owner, 'n1')?.text, owner);
  await notes.remove('oa', 'n1');
  assert.equal(notes.get('oa', 'n1'), undefined);
  await storage.close();
});

test('prune drops old and damaged records and keeps a newer release’s', async () => {
  const storage = TransportStorage.open(dir);
  const db = storage.database<unknown, [string, string]>('test.prune');
  const notes = open(storage, 'test.prune');
  await notes.put('p', 'old', { text: 'old', at: 10 });
  await notes.put('p', 'fresh', { text: 'fresh', at: 30 });
  await db.put(['p', 'damaged'], { v: 3, text: 7 });
  await db.put(['p', 'newer'], { v: 4, text: 'from a newer release', at: 0 });
  assert.deepEqual(
    notes.list('p').map((n) => n.id),
    ['fresh', 'old'],
    'unreadable records are not listed',
  );
  assert.equal(await notes.prune(20), 2);
  assert.deepEqual(
    [...db.getKeys({ start: ['p'], end: ['p', '\uffff'] })].map((k) => k[1]),
    ['fresh', 'newer'],
  );
  await storage.close();
});

test('share moves the records into the shared table, where the newer of two copies wins, and serves from it', async () => {
  const storage = TransportStorage.open(dir);
  const state = new LmdbSharedState(join(dir, 'shared'));
  try {
    const notes = open(storage, 'test.share');
    await notes.put('o', 'mine', { text: 'local', at: 5 });
    await notes.put('o', 'both', { text: 'local, older', at: 5 });
    await notes.put('o/x', 'other', { text: 'another owner', at: 5 });
    // Another node wrote one of them to the cluster already, later.
    const table = await state.table<unknown>('test_share', { read: (raw) => raw });
    await table.create('o\u0001both', { v: 3, text: 'shared, newer', at: 9 });

    assert.equal(notes.shared, false);
    await notes.share(state);
    assert.equal(notes.shared, true);
    assert.deepEqual(notes.list('o'), [
      { id: 'both', record: { text: 'shared, newer', at: 9 } },
      { id: 'mine', record: { text: 'local', at: 5 } },
    ]);
    assert.equal(notes.get('o/x', 'other')?.text, 'another owner');
    const db = storage.database<unknown, [string, string]>('test.share');
    assert.equal([...db.getKeys({})].length, 0, 'nothing left in the lmdb');

    await notes.put('o', 'new', { text: 'after the move', at: 7 });
    assert.deepEqual(table.get('o\u0001new')?.value, { v: 3, text: 'after the move', at: 7 });
    await notes.removeOwner('o');
    assert.deepEqual(notes.list('o'), []);
    assert.equal(
      notes.get('o/x', 'other')?.text,
      'another owner',
      'an owner’s range never takes in another’s',
    );
    assert.equal(await notes.prune(6), 1);
    assert.equal(notes.get('o/x', 'other'), undefined);
  } finally {
    await state.close();
    await storage.close();
  }
});

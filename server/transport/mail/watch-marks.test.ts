import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { TransportStorage } from '../kit/transport-storage.ts';
import { readWatchMark, WatchMarks } from './watch-marks.ts';

const dir = mkdtempSync(join(tmpdir(), 'mmgw-watch-marks-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('marks survive a reopen, per device; removed ones and stale ones go', async () => {
  let storage = TransportStorage.open(dir);
  let marks = new WatchMarks(storage);
  await marks.put('d1', 'm1', { uid: 7, cursor: 's1.abc', at: 1000 });
  await marks.put('d1', 'm2', { uid: 3, at: 5000 });
  await marks.put('d10', 'm3', { uid: 9, at: 5000 });
  await marks.put('d1', 'm1', { uid: 8, cursor: 's1.abd', at: 6000 });
  await storage.close();

  storage = TransportStorage.open(dir);
  marks = new WatchMarks(storage);
  assert.deepEqual(marks.list('d1'), [
    { id: 'm1', record: { uid: 8, cursor: 's1.abd', at: 6000 } },
    { id: 'm2', record: { uid: 3, at: 5000 } },
  ]);
  assert.deepEqual(
    marks.list('d10').map((m) => m.id),
    ['m3'],
    'a device id that shares a prefix keeps its own marks',
  );
  await marks.remove('d1', 'm2');
  assert.equal(marks.get('d1', 'm2'), undefined);
  assert.equal(await marks.prune(5500), 1);
  assert.equal(marks.get('d10', 'm3'), undefined);
  assert.equal(marks.get('d1', 'm1')?.uid, 8);
  await storage.close();
});

test('the stored record carries its version; the reader takes v1 and refuses what it cannot read', async () => {
  const storage = TransportStorage.open(dir);
  const marks = new WatchMarks(storage);
  await marks.put('d2', 'm1', { uid: 4, at: 10 });
  const raw = storage.database<unknown, [string, string]>('mail.watch').get(['d2', 'm1']);
  assert.deepEqual(raw, { v: 1, uid: 4, at: 10 });
  assert.deepEqual(readWatchMark({ v: 1, uid: 4, at: 10, cursor: 's1.x' }), {
    uid: 4,
    at: 10,
    cursor: 's1.x',
  });
  for (const bad of [
    null,
    'x',
    { uid: 4, at: 10 },
    { v: 2, uid: 4, at: 10 },
    { v: 1, uid: -1, at: 10 },
    { v: 1, uid: 1.5, at: 10 },
    { v: 1, uid: 4, at: 'now' },
    { v: 1, uid: 4, at: 10, cursor: 12 },
  ]) {
    assert.equal(readWatchMark(bad), undefined, JSON.stringify(bad));
  }
  await storage.close();
});

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { TransportStorage } from '../kit/transport-storage.ts';
import { ImSentRecords, readImSentRecord } from './sent-records.ts';

const dir = mkdtempSync(join(tmpdir(), 'mmgw-im-sent-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('im.send records: version 1 on disk, kept across a reopen, gone with the account or with age', async () => {
  let storage = TransportStorage.open(dir);
  await new ImSentRecords(storage).put('x1', 'c-1', { to: 'bob@example.test', at: 7 });
  await new ImSentRecords(storage).put('x1', 'c-2', { to: 'eve@example.test', at: 9 });
  await storage.close();
  storage = TransportStorage.open(dir);
  const sent = new ImSentRecords(storage);
  assert.deepEqual(storage.database<unknown, [string, string]>('im.sent').get(['x1', 'c-1']), {
    v: 1,
    to: 'bob@example.test',
    at: 7,
  });
  assert.deepEqual(sent.get('x1', 'c-1'), { to: 'bob@example.test', at: 7 });
  assert.equal(await sent.prune(8), 1);
  assert.equal(sent.get('x1', 'c-1'), undefined);
  await sent.removeOwner('x1');
  assert.equal(sent.get('x1', 'c-2'), undefined);
  await storage.close();
});

test('the reader refuses what is not a version 1 record', () => {
  const bad = [
    null,
    3,
    { to: 'a@b', at: 1 },
    { v: 2, to: 'a@b', at: 1 },
    { v: 1, to: 5, at: 1 },
    { v: 1, to: 'a@b' },
  ];
  for (const raw of bad) assert.equal(readImSentRecord(raw), undefined, JSON.stringify(raw));
});

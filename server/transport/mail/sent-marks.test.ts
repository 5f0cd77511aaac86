import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { TransportStorage } from '../kit/transport-storage.ts';
import { readSentMark, SentMarks } from './sent-marks.ts';

const dir = mkdtempSync(join(tmpdir(), 'mmgw-sent-marks-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('a mark survives a reopen; marks go with their account and with age', async () => {
  let storage = TransportStorage.open(dir);
  let marks = new SentMarks(storage);
  await marks.put('m1', 'c-1', { messageId: '<a@x>', at: 1000, bytes: 10 });
  await marks.put('m1', 'c-2', { messageId: '<b@x>', at: 5000, bytes: 20 });
  await marks.put('m10', 'c-1', { messageId: '<c@x>', at: 5000, bytes: 30 });
  await storage.close();

  storage = TransportStorage.open(dir);
  marks = new SentMarks(storage);
  assert.deepEqual(marks.get('m1', 'c-1'), { messageId: '<a@x>', at: 1000, bytes: 10 });
  assert.equal(marks.get('m1', 'c-3'), undefined);
  assert.equal(await marks.prune(2000), 1);
  assert.equal(marks.get('m1', 'c-1'), undefined);
  await marks.removeOwner('m1');
  assert.equal(marks.get('m1', 'c-2'), undefined);
  assert.equal(
    marks.get('m10', 'c-1')?.messageId,
    '<c@x>',
    'an account id that shares a prefix keeps its marks',
  );
  await storage.close();
});

test('marks carry v2 and the first answer; issue #11 marks (no v) still read', async () => {
  const storage = TransportStorage.open(dir);
  const marks = new SentMarks(storage);
  await marks.put('m2', 'c-1', { messageId: '<d@x>', at: 1, bytes: 5, rejected: ['eve@x'], sentCopy: true });
  const db = storage.database<unknown, [string, string]>('mail.sent');
  assert.deepEqual(db.get(['m2', 'c-1']), {
    v: 2,
    messageId: '<d@x>',
    at: 1,
    bytes: 5,
    rejected: ['eve@x'],
    sentCopy: true,
  });
  await db.put(['m2', 'old'], { messageId: '<e@x>', at: 2, bytes: 6 });
  assert.deepEqual(marks.get('m2', 'old'), { messageId: '<e@x>', at: 2, bytes: 6 });
  for (const bad of [
    null,
    { v: 3, messageId: '<a@x>', at: 1, bytes: 1 },
    { messageId: 1, at: 1, bytes: 1 },
    { messageId: '<a@x>', at: 1 },
  ]) {
    assert.equal(readSentMark(bad), undefined, JSON.stringify(bad));
  }
  await storage.close();
});

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { TransportStorage } from '../kit/transport-storage.ts';
import { SentMarks } from './sent-marks.ts';

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
  await marks.removeAccount('m1');
  assert.equal(marks.get('m1', 'c-2'), undefined);
  assert.equal(
    marks.get('m10', 'c-1')?.messageId,
    '<c@x>',
    'an account id that shares a prefix keeps its marks',
  );
  await storage.close();
});

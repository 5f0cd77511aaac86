import assert from 'node:assert/strict';
import { test } from 'node:test';
import { UnwrittenRecords } from './unwritten-records.ts';

/** A write the test settles by hand. */
function pending() {
  let settle!: (err?: Error) => void;
  const done = new Promise<void>((resolve, reject) => {
    settle = (err) => (err ? reject(err) : resolve());
  });
  return { write: () => done, settle };
}

test('a write that is fast: answered when written, nothing kept', async () => {
  const records = new UnwrittenRecords<string>(60_000);
  await records.write(
    'a',
    '1',
    'r',
    async () => {},
    (err) => assert.fail(String(err)),
  );
  assert.equal(records.get('a', '1'), undefined);
});

test('a write that is slow: answered after the wait, the record readable until it is written', async () => {
  const records = new UnwrittenRecords<string>(5);
  const w = pending();
  await records.write('a', '1', 'r', w.write, (err) => assert.fail(String(err)));
  assert.equal(records.get('a', '1'), 'r');
  assert.equal(records.get('a', '2'), undefined);
  w.settle();
  await new Promise((r) => setImmediate(r));
  assert.equal(records.get('a', '1'), undefined);
});

test('a write that fails: reported once, and the record kept', async () => {
  const records = new UnwrittenRecords<string>(5);
  const w = pending();
  const failures: unknown[] = [];
  await records.write('a', '1', 'r', w.write, (err) => failures.push(err));
  w.settle(new Error('timeout'));
  await new Promise((r) => setImmediate(r));
  assert.equal(failures.length, 1);
  assert.equal(records.get('a', '1'), 'r');
});

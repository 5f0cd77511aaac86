import assert from 'node:assert/strict';
import { test } from 'node:test';
import { KeyedTurns } from './keyed-turns.ts';

function gate() {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { open, opened };
}

test('runs of one key take turns, a failed run included; other keys do not wait; nothing is kept after', async () => {
  const turns = new KeyedTurns();
  const log: string[] = [];
  const first = gate();
  const a1 = turns.run('a', async () => {
    log.push('a1 start');
    await first.opened;
    log.push('a1 end');
    throw new Error('a1 failed');
  });
  const a2 = turns.run('a', async () => {
    log.push('a2 start');
    return 2;
  });
  const b1 = turns.run('b', async () => {
    log.push('b1');
    return 'b';
  });
  assert.equal(await b1, 'b');
  assert.deepEqual(log, ['a1 start', 'b1'], 'b does not wait for a; a2 waits for a1');
  first.open();
  await assert.rejects(a1, /a1 failed/);
  assert.equal(await a2, 2);
  assert.deepEqual(log, ['a1 start', 'b1', 'a1 end', 'a2 start']);
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(turns.size, 0);
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Slots } from './slots.ts';

/** A task that finishes when told to. */
function gate() {
  let open!: () => void;
  let fail!: (err: Error) => void;
  const done = new Promise<void>((resolve, reject) => {
    open = resolve;
    fail = reject;
  });
  return { done, open, fail };
}

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

test('at most `size` tasks run; the others start in the order they came as slots free', async () => {
  const slots = new Slots(2);
  const gates = Array.from({ length: 5 }, gate);
  const started: number[] = [];
  const runs = gates.map((g, i) =>
    slots.run(async () => {
      started.push(i);
      await g.done;
      return i;
    }),
  );
  await turn();
  assert.deepEqual(started, [0, 1]);
  assert.equal(slots.busy, 2);
  assert.equal(slots.waiting, 3);
  gates[1]!.open();
  await turn();
  assert.deepEqual(started, [0, 1, 2]);
  // A task that fails frees its slot too.
  gates[0]!.fail(new Error('refused'));
  await assert.rejects(runs[0]!, /refused/);
  await turn();
  assert.deepEqual(started, [0, 1, 2, 3]);
  for (const g of gates) g.open();
  assert.deepEqual(await Promise.all(runs.slice(1)), [1, 2, 3, 4]);
  assert.equal(slots.busy, 0);
  assert.equal(slots.waiting, 0);
});

test('a size below 1 is refused', () => {
  assert.throws(() => new Slots(0), RangeError);
});

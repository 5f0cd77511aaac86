import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GatewayError } from '../device-protocol/errors.ts';
import { JobQueue } from './job-queue.ts';

function gate() {
  let open!: () => void;
  const opened = new Promise<void>((r) => {
    open = r;
  });
  return { open, opened };
}

test('runs at most maxConcurrent, queues up to maxQueued, refuses the rest with a retryable busy', async () => {
  const queue = new JobQueue({
    maxConcurrent: 2,
    maxQueued: 3,
    maxQueuedBytes: 1_000_000,
    maxQueueWaitMs: 60_000,
  });
  const g = gate();
  let running = 0;
  let peak = 0;
  const job = async () => {
    running++;
    peak = Math.max(peak, running);
    await g.opened;
    running--;
    return 'done';
  };
  const accepted = Array.from({ length: 5 }, () => queue.run(10, job));
  assert.deepEqual(queue.stats, { running: 2, queued: 3, queuedBytes: 30, refused: 0, expired: 0 });
  await assert.rejects(queue.run(10, job), (err: unknown) => {
    assert.ok(err instanceof GatewayError);
    assert.equal(err.code, 'transcode.busy');
    assert.equal(err.retryable, true);
    return true;
  });
  g.open();
  assert.deepEqual(await Promise.all(accepted), ['done', 'done', 'done', 'done', 'done']);
  assert.equal(peak, 2);
  await queue.idle();
  assert.deepEqual(queue.stats, { running: 0, queued: 0, queuedBytes: 0, refused: 1, expired: 0 });
});

test('queued bytes are bounded too, and a failing job frees its slot', async () => {
  const queue = new JobQueue({
    maxConcurrent: 1,
    maxQueued: 10,
    maxQueuedBytes: 100,
    maxQueueWaitMs: 60_000,
  });
  const g = gate();
  const first = queue.run(1000, async () => {
    await g.opened;
    throw new Error('boom');
  });
  const second = queue.run(80, async () => 2);
  await assert.rejects(
    queue.run(30, async () => 3),
    { code: 'transcode.busy' },
  );
  g.open();
  await assert.rejects(first, /boom/);
  assert.equal(await second, 2);
});

test('a job that waited past maxQueueWaitMs is refused instead of run', async () => {
  let clock = 0;
  const queue = new JobQueue({
    maxConcurrent: 1,
    maxQueued: 10,
    maxQueuedBytes: 100,
    maxQueueWaitMs: 1000,
    now: () => clock,
  });
  const g = gate();
  const first = queue.run(1, () => g.opened.then(() => 1));
  let ran = false;
  const late = queue.run(1, async () => {
    ran = true;
  });
  clock = 5000;
  g.open();
  assert.equal(await first, 1);
  await assert.rejects(late, { code: 'transcode.busy' });
  assert.equal(ran, false);
  assert.equal(queue.stats.expired, 1);
});

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, test } from 'node:test';
import { WorkerJobError, WorkerPool } from './worker-pool.ts';

// A worker speaking the pool's protocol (what serveJobs does), in plain JS: jobs that
// answer, fail, spin, eat memory or exit.
const dir = mkdtempSync(join(tmpdir(), 'mmgw-pool-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const entry = pathToFileURL(join(dir, 'worker.mjs'));
writeFileSync(
  entry,
  `import { parentPort, threadId } from 'node:worker_threads';
parentPort.on('message', (job) => {
  if (job.op === 'echo') return parentPort.postMessage({ ok: true, result: { v: job.v, threadId } });
  if (job.op === 'throw') return parentPort.postMessage({ ok: false, error: 'bad input' });
  if (job.op === 'spin') for (;;) {}
  if (job.op === 'eat') { const hoard = []; for (;;) hoard.push(new Array(1e5).fill(Math.random())); }
  if (job.op === 'exit') process.exit(3);
});
`,
);

type Job = { op: string; v?: number };
type Res = { v: number; threadId: number };
const reason = (r: string) => (err: unknown) => err instanceof WorkerJobError && err.reason === r;

test('jobs run on workers, at most `size` of them; results come back in any order', async () => {
  const pool = new WorkerPool<Job, Res>({ entry, size: 2 });
  try {
    const results = await Promise.all(Array.from({ length: 6 }, (_, v) => pool.run({ op: 'echo', v })));
    assert.deepEqual(
      results.map((r) => r.v),
      [0, 1, 2, 3, 4, 5],
    );
    assert.ok(new Set(results.map((r) => r.threadId)).size <= 2);
    assert.equal(pool.workers <= 2, true);
    await assert.rejects(
      pool.run({ op: 'throw' }),
      (err: unknown) => reason('failed')(err) && /bad input/.test(String(err)),
    );
    assert.equal((await pool.run({ op: 'echo', v: 7 })).v, 7, 'a job that failed leaves its worker usable');
  } finally {
    await pool.close();
  }
});

test('a job past its time or its heap ends its worker; the next job gets a new one', async () => {
  // Generous: a worker starting on a loaded machine must not make an echo time out.
  const pool = new WorkerPool<Job, Res>({ entry, size: 1, jobTimeoutMs: 2000, maxHeapMb: 32 });
  try {
    const first = await pool.run({ op: 'echo', v: 1 });
    await assert.rejects(pool.run({ op: 'spin' }), reason('timeout'));
    const second = await pool.run({ op: 'echo', v: 2 });
    assert.notEqual(second.threadId, first.threadId, 'the spinning worker was replaced');
    await assert.rejects(
      pool.run({ op: 'eat' }),
      (err: unknown) => reason('memory')(err) || reason('timeout')(err),
    );
    await assert.rejects(pool.run({ op: 'exit' }), reason('crashed'));
    assert.equal((await pool.run({ op: 'echo', v: 3 })).v, 3);
    assert.ok(pool.failures.timeout >= 1);
  } finally {
    await pool.close();
  }
});

test('a full queue fails at once (busy); a closed pool fails every job (closed)', async () => {
  const pool = new WorkerPool<Job, Res>({ entry, size: 1, maxQueue: 1, jobTimeoutMs: 2000 });
  const spinning = pool.run({ op: 'spin' });
  const waiting = pool.run({ op: 'echo', v: 1 });
  await assert.rejects(pool.run({ op: 'echo', v: 2 }), reason('busy'));
  await assert.rejects(spinning, reason('timeout'));
  assert.equal((await waiting).v, 1, 'the queued job ran once a worker was free');
  await pool.close();
  await assert.rejects(pool.run({ op: 'echo', v: 3 }), reason('closed'));
});

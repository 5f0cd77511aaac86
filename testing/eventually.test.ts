import assert from 'node:assert/strict';
import { test } from 'node:test';
import { eventually } from './eventually.ts';

test('eventually resolves with the first value the probe yields', async () => {
  let n = 0;
  const v = await eventually('the third probe', () => (++n >= 3 ? { n } : undefined), { intervalMs: 1 });
  assert.deepEqual(v, { n: 3 });
});

test('eventually retries a probe that throws, then resolves', async () => {
  let n = 0;
  const v = await eventually(
    'a probe that fails twice',
    async () => {
      if (++n < 3) throw new Error('not yet');
      return true;
    },
    { intervalMs: 1 },
  );
  assert.equal(v, true);
});

test('eventually fails naming what it waited for and the last error', async () => {
  await assert.rejects(
    eventually(
      'the moon',
      () => {
        throw new Error('refused');
      },
      { timeoutMs: 20, intervalMs: 1 },
    ),
    /waiting for the moon; last error: refused/,
  );
  await assert.rejects(
    eventually('false', () => false, { timeoutMs: 5, intervalMs: 1 }),
    /last value: false/,
  );
});

test('eventually fails at once on an AssertionError of the probe (a check, not a "not yet")', async () => {
  let n = 0;
  await assert.rejects(
    eventually(
      'an answer that must be bus.timeout until it is the session',
      () => {
        n++;
        assert.equal('auth.resume_failed', 'bus.timeout');
        return true;
      },
      { timeoutMs: 10_000, intervalMs: 1 },
    ),
    assert.AssertionError,
  );
  assert.equal(n, 1);
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GatewayError } from '../../../../device-protocol/errors.ts';
import { deferred, withTimeout } from './async.ts';

test('withTimeout passes the result through, or fails with a retryable im.unreachable naming what took long', async () => {
  assert.equal(await withTimeout(Promise.resolve(7), 1000, 'x'), 7);
  await assert.rejects(withTimeout(Promise.reject(new Error('own')), 1000, 'x'), /own/);
  const never = deferred<void>();
  await assert.rejects(
    withTimeout(never.promise, 5, 'opening the door'),
    (err: unknown) =>
      err instanceof GatewayError &&
      err.code === 'im.unreachable' &&
      err.retryable &&
      err.message === 'opening the door took longer than 5 ms',
  );
});

test('deferred settles from outside, once', async () => {
  const d = deferred<string>();
  d.resolve('a');
  d.reject(new Error('late'));
  assert.equal(await d.promise, 'a');
});

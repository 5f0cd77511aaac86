import assert from 'node:assert/strict';
import { test } from 'node:test';
import { retryAfterMs } from './web-push-sender.ts';

test('Retry-After: delta-seconds or an HTTP date, in ms; absent or unreadable is undefined', () => {
  const now = Date.parse('Mon, 07 Dec 2026 12:00:00 GMT');
  assert.equal(retryAfterMs('120', now), 120_000);
  assert.equal(retryAfterMs(' 0 ', now), 0);
  assert.equal(retryAfterMs('Mon, 07 Dec 2026 12:00:30 GMT', now), 30_000);
  assert.equal(retryAfterMs('Mon, 07 Dec 2026 11:00:00 GMT', now), 0, 'a date in the past: at once');
  assert.equal(retryAfterMs(undefined, now), undefined);
  assert.equal(retryAfterMs('soon', now), undefined);
  assert.equal(retryAfterMs('-5', now), undefined);
});

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { WakeupDelta } from '../server/records/types.ts';
import { DAY_MS, HOUR_MS, RecordsStore } from './records-store.ts';

const T0 = Date.UTC(2026, 0, 10, 12, 0, 0);

/** A delta with `sent` wake-ups in latency bucket `bucket` (index of WAKEUP_LATENCY_BOUNDS_S, 10 beyond). */
function delta(over: Partial<WakeupDelta> & { imei: string; channel: string }, bucket = 0): WakeupDelta {
  const sent = over.sent ?? 0;
  const latencyBuckets = new Array(11).fill(0);
  latencyBuckets[bucket] = sent;
  return { at: T0, sent, failed: 0, pruned: 0, latencySumMs: 0, latencyBuckets, ...over };
}

test('wake-ups per channel across nodes’ batches: summed, by operator, mean and bucket quantiles, aged out', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'mmgw-wakeups-'));
  t.after(() => rmSync(dataDir, { recursive: true, force: true }));
  let now = T0;
  const operators: Record<string, string> = { '1': 'op1', '2': 'op2' };
  const store = await RecordsStore.open({ dataDir, now: () => now, operatorOf: (imei) => operators[imei] });
  t.after(() => store.close());
  // Two nodes' batches: 98 fast and 2 slow FCM wake-ups of device 1, some of device 2.
  await store.write({
    logs: [],
    usage: [],
    wakeups: [
      delta({ imei: '1', channel: 'fcm', sent: 98, failed: 3, latencySumMs: 98 * 80 }, 1),
      delta({ imei: '2', channel: 'webpush', sent: 1, pruned: 2, latencySumMs: 300 }, 3),
    ],
  });
  await store.write({
    logs: [],
    usage: [],
    wakeups: [
      delta({ imei: '1', channel: 'fcm', sent: 2, latencySumMs: 2 * 4000 }, 7),
      delta({ imei: '1', channel: 'sms', failed: 1 }),
      // Bus input: malformed ones are dropped, the batch stays.
      { ...delta({ imei: '1', channel: 'apns', sent: 5 }), latencyBuckets: [5] },
      { ...delta({ imei: '1', channel: 'apns', sent: 5 }), sent: -5 },
    ],
  });
  const all = store.wakeupReport(T0 - HOUR_MS, T0 + HOUR_MS);
  assert.deepEqual(all, [
    {
      channel: 'fcm',
      sent: 100,
      failed: 3,
      pruned: 0,
      // The mean to the millisecond.
      latency: { meanSeconds: Math.round((98 * 80 + 8000) / 100) / 1000, p50Seconds: 0.1, p99Seconds: 10 },
    },
    { channel: 'sms', sent: 0, failed: 1, pruned: 0 },
    {
      channel: 'webpush',
      sent: 1,
      failed: 0,
      pruned: 2,
      latency: { meanSeconds: 0.3, p50Seconds: 0.5, p99Seconds: 0.5 },
    },
  ]);
  assert.deepEqual(
    store.wakeupReport(T0 - HOUR_MS, T0 + HOUR_MS, 'op2').map((w) => w.channel),
    ['webpush'],
  );
  assert.deepEqual(store.wakeupReport(T0 + HOUR_MS, T0 + 2 * HOUR_MS), [], 'outside the range: none');
  now = T0 + 401 * DAY_MS;
  await store.sweep();
  assert.deepEqual(store.wakeupReport(T0 - HOUR_MS, T0 + HOUR_MS), [], 'aged out with the usage counters');
});

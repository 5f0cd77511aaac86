import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Subjects } from '../bus/bus.ts';
import { InProcessBus } from '../bus/inproc.ts';
import { createBusRecorder, type RecordBatch } from './recorder.ts';

const HOUR = 3_600_000;

test('batches logs and sums usage per hour, device, operator and service; flush waits for the answer', async (t) => {
  const bus = new InProcessBus();
  t.after(() => bus.close());
  const batches: RecordBatch[] = [];
  bus.subscribe(Subjects.records, (msg) => {
    batches.push(msg.data as RecordBatch);
    return { stored: 1 };
  });
  const recorder = createBusRecorder({ bus, nodeId: 'n1', flushMs: 60_000 });
  t.after(() => recorder.close());
  recorder.log({ at: 5, imei: '1', kind: 'connect', service: 'session' });
  recorder.log({ imei: '1', kind: 'disconnect', service: 'session', message: 'x'.repeat(2000) });
  recorder.usage({ at: 10, imei: '1', operator: 'op', service: 'session', logins: 1, bytesIn: 100 });
  recorder.usage({ at: 20, imei: '1', operator: 'op', service: 'session', logins: 1, bytesIn: 50 });
  recorder.usage({ at: HOUR + 1, imei: '1', operator: 'op', service: 'session', logouts: 1 });
  recorder.usage({ at: 30, imei: '1', operator: 'op', service: 'mail', messagesIn: 2 });
  await recorder.flush();
  assert.equal(batches.length, 1);
  const [b] = batches;
  assert.ok(b);
  assert.deepEqual(
    b.logs.map((l) => [l.kind, l.node]),
    [
      ['connect', 'n1'],
      ['disconnect', 'n1'],
    ],
  );
  assert.ok((b.logs[1]?.message ?? '').length <= 500, 'messages are bounded');
  assert.deepEqual(b.usage, [
    { at: 0, imei: '1', operator: 'op', service: 'session', logins: 2, bytesIn: 150 },
    { at: HOUR, imei: '1', operator: 'op', service: 'session', logouts: 1 },
    { at: 0, imei: '1', operator: 'op', service: 'mail', messagesIn: 2 },
  ]);
  await recorder.flush();
  assert.equal(batches.length, 1, 'nothing new, nothing sent');
});

test('a full batch goes at once, without waiting for the timer', async (t) => {
  const bus = new InProcessBus();
  t.after(() => bus.close());
  const sizes: number[] = [];
  bus.subscribe(Subjects.records, (msg) => {
    sizes.push((msg.data as RecordBatch).logs.length);
    return {};
  });
  const recorder = createBusRecorder({ bus, nodeId: 'n1', flushMs: 60_000, maxBatch: 3 });
  t.after(() => recorder.close());
  for (let i = 0; i < 3; i++) recorder.log({ imei: '1', kind: 'sync', service: 'mail' });
  await recorder.flush();
  assert.deepEqual(sizes, [3]);
});

test('without an admin, records are kept (bounded, oldest dropped) and sent once one answers', async (t) => {
  const bus = new InProcessBus();
  t.after(() => bus.close());
  const recorder = createBusRecorder({ bus, nodeId: 'n1', flushMs: 60_000, maxPending: 5 });
  t.after(() => recorder.close());
  for (let i = 0; i < 8; i++) recorder.log({ at: i, imei: '1', kind: 'sync', service: 'mail' });
  await recorder.flush(); // no responders: kept
  assert.equal(recorder.dropped(), 3);
  const got: RecordBatch[] = [];
  bus.subscribe(Subjects.records, (msg) => {
    got.push(msg.data as RecordBatch);
    return {};
  });
  recorder.log({ at: 100, imei: '1', kind: 'sync', service: 'mail' });
  await recorder.flush();
  assert.equal(got.length, 1);
  // The newest of the first eight survive, in order, before the later one.
  assert.deepEqual(
    got[0]!.logs.map((l) => l.at),
    [4, 5, 6, 7, 100],
  );
});

test('never throws: an admin that fails, bad input, use after close', async (t) => {
  const bus = new InProcessBus();
  t.after(() => bus.close());
  bus.subscribe(Subjects.records, () => {
    throw new Error('disk full');
  });
  const recorder = createBusRecorder({ bus, nodeId: 'n1', flushMs: 60_000 });
  const circular: Record<string, unknown> = {};
  circular.self = circular;
  recorder.log({ imei: '1', kind: 'error', service: 'session', detail: circular as never });
  recorder.usage({ imei: '1', service: 'session', bytesIn: Number.NaN, logins: -5 });
  await recorder.flush();
  await recorder.close();
  recorder.log({ imei: '1', kind: 'error', service: 'session' });
  await recorder.flush();
  assert.ok(recorder.dropped() >= 1, 'records the failing admin never stored are counted at close');
});

test('wake-up outcomes: summed per hour, device and channel with their latency buckets; kept while no admin answers', async (t) => {
  const bus = new InProcessBus();
  t.after(() => bus.close());
  const recorder = createBusRecorder({ bus, nodeId: 'n1', flushMs: 60_000 });
  t.after(() => recorder.close());
  recorder.wakeup?.({ at: 10, imei: '1', channel: 'fcm', sent: 1, latencyMs: 40 });
  recorder.wakeup?.({ at: 20, imei: '1', channel: 'fcm', sent: 1, latencyMs: 700 });
  recorder.wakeup?.({ at: 30, imei: '1', channel: 'fcm', failed: 1 });
  recorder.wakeup?.({ at: 40, imei: '1', channel: 'fcm', sent: 1, latencyMs: 61_000 });
  recorder.wakeup?.({ at: HOUR + 1, imei: '1', channel: 'webpush', pruned: 1 });
  recorder.wakeup?.({ at: 50, imei: '1', channel: 'sms', failed: Number.NaN, latencyMs: -1 });
  // Nobody stores yet: the batch comes back and is sent again whole with what came meanwhile.
  await recorder.flush();
  recorder.wakeup?.({ at: 60, imei: '1', channel: 'fcm', sent: 1, latencyMs: 100 });
  const batches: RecordBatch[] = [];
  bus.subscribe(Subjects.records, (msg) => {
    batches.push(msg.data as RecordBatch);
    return { stored: 1 };
  });
  await recorder.flush();
  assert.equal(batches.length, 1);
  const buckets = (...at: [number, number][]) => {
    const b = new Array(11).fill(0);
    for (const [i, n] of at) b[i] = n;
    return b;
  };
  assert.deepEqual(batches[0]?.wakeups, [
    {
      at: 0,
      imei: '1',
      channel: 'fcm',
      sent: 4,
      failed: 1,
      pruned: 0,
      latencySumMs: 40 + 700 + 61_000 + 100,
      // ≤ 0.05 s, ≤ 0.1 s, ≤ 1 s and beyond 60 s.
      latencyBuckets: buckets([0, 1], [1, 1], [4, 1], [10, 1]),
    },
    {
      at: HOUR,
      imei: '1',
      channel: 'webpush',
      sent: 0,
      failed: 0,
      pruned: 1,
      latencySumMs: 0,
      latencyBuckets: buckets(),
    },
    {
      at: 0,
      imei: '1',
      channel: 'sms',
      sent: 0,
      failed: 0,
      pruned: 0,
      latencySumMs: 0,
      latencyBuckets: buckets(),
    },
  ]);
});

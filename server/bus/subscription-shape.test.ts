/**
 * InProcessBus subscriptions cost no closures (an edge holds one per device
 * session), and a queue-group member that leaves after a request was routed to
 * it does not lose the request: another member answers.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { InProcessBus } from './inproc.ts';

test('subscriptions are plain objects sharing their methods (no per-subscription closure)', async (t) => {
  const bus = new InProcessBus();
  t.after(() => bus.close());
  const handler = () => 1;
  const a = bus.subscribe('mmgw.device.1', handler);
  const b = bus.subscribe('mmgw.device.2', handler, { queue: 'q' });
  assert.equal(a.unsubscribe, b.unsubscribe, 'one unsubscribe function for all');
  assert.notEqual(Object.getPrototypeOf(a), Object.prototype);
  for (const v of Object.values(a)) {
    if (typeof v === 'function') assert.equal(v, handler, 'no function of its own, only the handler given');
  }
  a.unsubscribe();
  b.unsubscribe();
  assert.equal(bus.subscriptionCount(), 0);
});

test('a request routed to a queue member that left meanwhile is answered by another member', async (t) => {
  const bus = new InProcessBus();
  t.after(() => bus.close());
  const answered: string[] = [];
  let second: ReturnType<InProcessBus['subscribe']> | undefined;
  const first = bus.subscribe(
    'mmgw.device.7',
    () => {
      answered.push('first');
      return 'first';
    },
    { queue: 'edges' },
  );
  second = bus.subscribe(
    'mmgw.device.7',
    () => {
      answered.push('second');
      return 'second';
    },
    { queue: 'edges' },
  );
  // Route two requests (one to each member), then let both members go except one before delivery.
  const r1 = bus.request('mmgw.device.7', 1);
  const r2 = bus.request('mmgw.device.7', 2);
  first.unsubscribe();
  assert.deepEqual(await Promise.all([r1, r2]), ['second', 'second']);
  second.unsubscribe();
  second = undefined;
  await assert.rejects(
    bus.request('mmgw.device.7', 3),
    (e: { code?: string }) => e.code === 'bus.no_responders',
  );
  assert.deepEqual(answered, ['second', 'second']);
});

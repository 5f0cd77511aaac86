import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Carrier, PollCarrier, WsCarrier } from './carriers.ts';
import { FlushScheduler } from './flush-scheduler.ts';

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

function fakeWs(name: string, log: string[], fail = false): WsCarrier {
  return {
    flushLive() {
      log.push(name);
      if (fail) throw new Error(`${name} broke`);
    },
  } as unknown as WsCarrier;
}

function fakePoll(name: string, log: string[]): PollCarrier {
  const c = {
    flushQueued: false,
    flush(force: boolean) {
      c.flushQueued = false;
      log.push(`${name} ${force}`);
    },
  };
  return c as unknown as PollCarrier;
}

test('WebSocket flushes wait for the end of the turn and run in order', async () => {
  const log: string[] = [];
  const flushes = new FlushScheduler({ internalError: () => assert.fail('no error expected') });
  flushes.ws(fakeWs('a', log));
  flushes.ws(fakeWs('b', log));
  assert.deepEqual(log, []);
  await nextTurn();
  assert.deepEqual(log, ['a', 'b']);
  flushes.ws(fakeWs('c', log)); // a new turn schedules again
  await nextTurn();
  assert.deepEqual(log, ['a', 'b', 'c']);
});

test('a failing WebSocket flush closes that carrier only', async () => {
  const log: string[] = [];
  const failed: Carrier[] = [];
  const flushes = new FlushScheduler({ internalError: (c) => failed.push(c) });
  const bad = fakeWs('bad', log, true);
  flushes.ws(bad);
  flushes.ws(fakeWs('good', log));
  await nextTurn();
  assert.deepEqual(log, ['bad', 'good']);
  assert.deepEqual(failed, [bad]);
});

test('a held GET is answered once per turn however often it is scheduled', async () => {
  const log: string[] = [];
  const flushes = new FlushScheduler({ internalError: () => assert.fail('no error expected') });
  const p = fakePoll('p', log);
  const q = fakePoll('q', log);
  flushes.poll(p);
  flushes.poll(q);
  flushes.poll(p);
  assert.equal(p.flushQueued, true);
  await nextTurn();
  assert.deepEqual(log, ['p false', 'q false']);
  flushes.poll(p);
  await nextTurn();
  assert.deepEqual(log, ['p false', 'q false', 'p false']);
});

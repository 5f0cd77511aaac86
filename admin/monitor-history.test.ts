import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MonitorHistory } from './monitor-history.ts';
import type { NodeView } from './monitor.ts';

function node(
  nodeId: string,
  sessions: number,
  connected: number,
  status: NodeView['status'] = 'up',
): NodeView {
  return {
    nodeId,
    roles: ['edge'],
    release: 'test',
    startedAt: 0,
    uptimeSeconds: 0,
    rssBytes: 0,
    cpuSeconds: 0,
    cpuPercent: 0,
    sessions,
    connected,
    status,
    lastSeenAt: 0,
  };
}

test('a sample sums the live nodes and the records of its interval, then starts afresh', () => {
  let now = 1_000_000;
  let nodes = [node('e1', 10, 7), node('e2', 5, 5), node('e3', 99, 99, 'gone')];
  const history = new MonitorHistory(() => nodes, { now: () => now, timer: false });
  assert.deepEqual(history.list(), []);
  history.observe([
    { kind: 'connect' },
    { kind: 'message_in' },
    { kind: 'backend_error' },
    { kind: 'error' },
    { kind: 'auth_failure' },
    { kind: 'auth_failure' },
    // Not records: skipped.
    null,
    'backend_error',
    { kind: 7 },
  ]);
  now += 3000;
  assert.deepEqual(history.sample(), {
    at: 1_003_000,
    sessions: 15,
    connected: 12,
    eventsPerSecond: 2,
    errors: 2,
    authFailures: 2,
  });
  nodes = [node('e1', 4, 1)];
  now += 15_000;
  history.sample();
  assert.deepEqual(
    history.list().map((s) => [s.at, s.sessions, s.connected, s.eventsPerSecond, s.errors, s.authFailures]),
    [
      [1_003_000, 15, 12, 2, 2, 2],
      [1_018_000, 4, 1, 0, 0, 0],
    ],
  );
});

test('the ring keeps one hour: the oldest samples go, the order stays oldest first', () => {
  let now = 0;
  let sessions = 0;
  const history = new MonitorHistory(() => [node('e1', sessions, sessions)], {
    now: () => now,
    timer: false,
    intervalMs: 15_000,
    keepMs: 60 * 60_000,
  });
  for (let i = 1; i <= 250; i++) {
    now = i * 15_000;
    sessions = i;
    history.sample();
  }
  const list = history.list();
  assert.equal(list.length, 240);
  assert.equal(list[0]?.sessions, 11);
  assert.equal(list.at(-1)?.sessions, 250);
  assert.ok(list.every((s, i) => i === 0 || s.at - (list[i - 1]?.at ?? 0) === 15_000));
});

test('events per second over the time the interval really lasted', () => {
  let now = 0;
  const history = new MonitorHistory(() => [], { now: () => now, timer: false });
  history.observe(Array.from({ length: 45 }, () => ({ kind: 'sync' })));
  now = 15_000;
  assert.equal(history.sample().eventsPerSecond, 3);
  history.observe([{ kind: 'sync' }]);
  now = 45_000;
  assert.equal(history.sample().eventsPerSecond, 0.03);
});

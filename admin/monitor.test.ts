import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { NodeHeartbeat } from '../server/bus/bus.ts';
import type { Membership } from '../server/router/membership.ts';
import { BACKEND_WINDOW_MS, NodeMonitor } from './monitor.ts';

/** Stands in for Membership: the test decides who is alive. */
function fakeMembership() {
  let live: NodeHeartbeat[] = [];
  const listeners = new Set<() => void>();
  return {
    membership: {
      nodes: () => live,
      onChange(l: () => void) {
        listeners.add(l);
        return () => listeners.delete(l);
      },
    } as unknown as Membership,
    set(nodes: NodeHeartbeat[]) {
      live = nodes;
      for (const l of listeners) l();
    },
  };
}

const hb = (nodeId: string, over: Partial<NodeHeartbeat> = {}): NodeHeartbeat => ({
  nodeId,
  roles: ['edge'],
  release: '1',
  startedAt: 1000,
  ttlMs: 3500,
  draining: false,
  sessions: 3,
  rssBytes: 100,
  cpuSeconds: 1,
  ...over,
});

test('a node gone without draining raises node_gone until it is back; a drained one does not', () => {
  let now = 10_000;
  const f = fakeMembership();
  const monitor = new NodeMonitor(f.membership, { now: () => now });
  let changes = 0;
  monitor.onAlarmsChanged(() => changes++);
  f.set([hb('a'), hb('b')]);
  assert.deepEqual(
    monitor.nodes().map((n) => [n.nodeId, n.status, n.sessions, n.uptimeSeconds]),
    [
      ['a', 'up', 3, 9],
      ['b', 'up', 3, 9],
    ],
  );
  // Devices online vs sessions held; a node of an older release reports sessions only.
  f.set([hb('a', { connected: 1 }), hb('b')]);
  assert.deepEqual(
    monitor.nodes().map((n) => [n.nodeId, n.connected, n.sessions]),
    [
      ['a', 1, 3],
      ['b', 3, 3],
    ],
  );
  f.set([hb('a'), hb('b', { draining: true })]);
  assert.equal(monitor.nodes()[1]?.status, 'draining');
  now += 1000;
  f.set([hb('c')]);
  monitor.noteGoodbye('c');
  f.set([]);
  assert.equal(monitor.alarmList(true).length, 0, 'no alarm before the goodbye grace has passed');
  now += 1000;
  monitor.refresh();
  const alarms = monitor.alarmList(true);
  assert.deepEqual(
    alarms.map((a) => [a.kind, a.subject, a.severity]),
    [['node_gone', 'a', 'critical']],
  );
  assert.deepEqual(
    monitor.nodes().map((n) => [n.nodeId, n.status, n.sessions]),
    [
      ['a', 'gone', 0],
      ['b', 'gone', 0],
      ['c', 'gone', 0],
    ],
  );
  assert.equal(changes, 1);
  f.set([hb('a')]);
  assert.equal(monitor.alarmList(true).length, 0);
  assert.equal(monitor.alarmList().length, 1, 'the cleared alarm stays listed, inactive');
  assert.equal(monitor.isLive('a'), true);
  assert.equal(monitor.isLive('b'), false);
  monitor.close();
});

test('backend_error records raise backend_failing past a threshold; it clears after a quiet window', () => {
  let now = 10_000;
  const f = fakeMembership();
  const monitor = new NodeMonitor(f.membership, { now: () => now });
  const err = {
    at: now,
    imei: '1',
    node: 'n',
    kind: 'backend_error' as const,
    service: 'mail' as const,
    code: 'mail.unreachable',
  };
  monitor.observeLogs([err, { ...err, kind: 'sync' }]);
  monitor.observeLogs([err]);
  assert.equal(monitor.alarmList(true).length, 0, 'two are not an alarm yet');
  monitor.observeLogs([err, { ...err, service: 'im', code: 'im.unreachable' }]);
  const [alarm] = monitor.alarmList(true);
  assert.ok(alarm);
  assert.equal(alarm.kind, 'backend_failing');
  assert.equal(alarm.subject, 'mail:mail.unreachable');
  assert.equal(alarm.count, 3);
  now += BACKEND_WINDOW_MS + 1;
  monitor.refresh();
  assert.equal(monitor.alarmList(true).length, 0);
  monitor.close();
});

test('transport rows carry the devices and accounts they serve; bad counts from the bus show none', () => {
  const f = fakeMembership();
  const monitor = new NodeMonitor(f.membership, { now: () => 10_000 });
  const served = { devices: 4, mailAccounts: 3, imAccounts: 2 };
  f.set([
    hb('t1', { roles: ['transport'], served }),
    hb('t2', { roles: ['transport'], served: { devices: -1, mailAccounts: 1, imAccounts: 1 } }),
    hb('t3', { roles: ['transport'], served: 'lots' as never }),
    hb('e1'),
  ]);
  assert.deepEqual(
    monitor.nodes().map((n) => [n.nodeId, n.served]),
    [
      ['e1', undefined],
      ['t1', served],
      ['t2', undefined],
      ['t3', undefined],
    ],
  );
  monitor.close();
});

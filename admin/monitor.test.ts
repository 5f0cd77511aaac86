import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AlarmBook } from '../server/alarms/alarm-book.ts';
import { MemoryAlarmHistory } from '../server/alarms/history.ts';
import { fakeMembership, heartbeat as hb } from '../testing/fake-membership.ts';
import { NodeMonitor } from './monitor.ts';

test('nodes are listed from their heartbeats; those that left stay listed as gone', async () => {
  let now = 10_000;
  const f = fakeMembership();
  const book = await AlarmBook.open({ history: new MemoryAlarmHistory(), nodeId: 'n' });
  const monitor = new NodeMonitor(f.membership, book, { now: () => now });
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
  f.set([hb('a')]);
  assert.deepEqual(
    monitor.nodes().map((n) => [n.nodeId, n.status, n.sessions]),
    [
      ['a', 'up', 3],
      ['b', 'gone', 0],
    ],
  );
  assert.equal(monitor.isLive('a'), true);
  assert.equal(monitor.isLive('b'), false);
  monitor.close();
  await book.close();
});

test('the alarms listed are the book’s, and a change in the book is announced', async () => {
  const f = fakeMembership();
  const book = await AlarmBook.open({ history: new MemoryAlarmHistory(), nodeId: 'n' });
  const monitor = new NodeMonitor(f.membership, book);
  let changes = 0;
  monitor.onAlarmsChanged(() => changes++);
  await book.raise({ kind: 'node_gone', subject: 'x', severity: 'critical', message: 'gone' });
  assert.deepEqual(
    monitor.alarmList(true).map((a) => [a.kind, a.subject, a.active]),
    [['node_gone', 'x', true]],
  );
  await book.clear('node_gone', 'x');
  assert.equal(monitor.alarmList(true).length, 0);
  assert.equal(monitor.alarmList().length, 1, 'the cleared alarm stays listed, inactive');
  assert.equal(changes, 2);
  assert.deepEqual(
    (await monitor.alarmHistory({ limit: 10 })).map((s) => s.record.state),
    ['cleared', 'raised'],
  );
  monitor.close();
  await book.close();
});

test('transport rows carry the devices and accounts they serve; bad counts from the bus show none', async () => {
  const f = fakeMembership();
  const book = await AlarmBook.open({ history: new MemoryAlarmHistory(), nodeId: 'n' });
  const monitor = new NodeMonitor(f.membership, book, { now: () => 10_000 });
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
  await book.close();
});

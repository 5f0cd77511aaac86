import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fakeMembership, heartbeat as hb } from '../../testing/fake-membership.ts';
import { eventually } from '../../testing/eventually.ts';
import { Subjects } from '../bus/bus.ts';
import { InProcessBus } from '../bus/inproc.ts';
import { AlarmBook } from './alarm-book.ts';
import { ClusterWatch } from './cluster-watch.ts';
import { MemoryAlarmHistory } from './history.ts';

async function rig(roles: string[] = ['edge']) {
  let now = 10_000;
  const f = fakeMembership();
  const bus = new InProcessBus();
  const book = await AlarmBook.open({ history: new MemoryAlarmHistory(), nodeId: 'me', now: () => now });
  const watch = new ClusterWatch({
    book,
    membership: f.membership,
    bus,
    nodeId: 'me',
    roles,
    adminGoneAfterMs: 5000,
    now: () => now,
    tickMs: 60_000,
  });
  return {
    f,
    bus,
    book,
    watch,
    advance(ms: number) {
      now += ms;
      watch.refresh();
    },
    active: () => book.list(true).map((a) => `${a.kind}:${a.subject}`),
    async close() {
      watch.close();
      await book.close();
      await bus.close();
    },
  };
}

test('a node gone without goodbye raises node_gone after the grace; back clears it; drained and goodbye ones do not', async () => {
  const r = await rig(['admin']);
  r.f.set([hb('me', { roles: ['admin'] }), hb('a'), hb('b'), hb('c')]);
  r.f.set([hb('me', { roles: ['admin'] }), hb('a'), hb('b', { draining: true }), hb('c')]);
  r.watch.noteGoodbye('c');
  r.f.set([hb('me', { roles: ['admin'] })]);
  assert.deepEqual(r.active(), [], 'nothing before the goodbye grace');
  r.advance(1000);
  await eventually('node_gone for a', () => r.active().join() === 'node_gone:a');
  r.f.set([hb('me', { roles: ['admin'] }), hb('a')]);
  await eventually('cleared when a is back', () => r.active().length === 0);
  assert.deepEqual(
    r.book.list().map((a) => [a.subject, a.active]),
    [['a', false]],
  );
  await r.close();
});

test('a goodbye heartbeat on the bus marks a clean leave', async () => {
  const r = await rig(['admin']);
  r.f.set([hb('me', { roles: ['admin'] }), hb('a')]);
  r.bus.publish(Subjects.heartbeat, hb('a', { ttlMs: 0 }));
  await r.bus.flush();
  r.f.set([hb('me', { roles: ['admin'] })]);
  r.advance(1000);
  r.advance(1000);
  assert.deepEqual(r.active(), []);
  await r.close();
});

test('no admin node for adminGoneAfterMs raises admin_gone on a non-admin node; an admin clears it', async () => {
  const r = await rig(['edge']);
  r.f.set([hb('me'), hb('adm', { roles: ['admin'] })]);
  r.f.set([hb('me')]);
  r.watch.noteGoodbye('adm');
  r.advance(4000);
  assert.deepEqual(r.active(), [], 'not before adminGoneAfterMs');
  r.advance(1500);
  await eventually('admin_gone', () => r.active().join() === 'admin_gone:cluster');
  assert.equal(r.book.list(true)[0]?.severity, 'critical');
  r.f.set([hb('me'), hb('adm2', { roles: ['all'] })]);
  await eventually('cleared by an all-roles node', () => r.active().length === 0);
  await r.close();
});

test('an admin node never raises admin_gone', async () => {
  const r = await rig(['admin']);
  r.f.set([]);
  r.advance(60_000);
  assert.deepEqual(r.active(), []);
  await r.close();
});

test('while this node’s bus is down, nobody is judged gone from its stale membership', async () => {
  const r = await rig(['edge']);
  r.f.set([hb('me'), hb('a'), hb('adm', { roles: ['admin'] })]);
  r.watch.busConnection(false);
  r.f.set([]);
  r.advance(30_000);
  r.watch.busConnection(true);
  r.advance(1000);
  r.f.set([hb('me'), hb('a'), hb('adm', { roles: ['admin'] })]);
  r.advance(5000);
  assert.deepEqual(r.active(), []);
  await r.close();
});

test('NATS servers gone and back', async () => {
  const r = await rig();
  r.watch.natsServer({ server: '127.0.0.1:4223', state: 'gone' });
  r.watch.natsServer({ server: '127.0.0.1:4223', state: 'gone' });
  await eventually('raised once', () => r.active().join() === 'nats_server_gone:127.0.0.1:4223');
  assert.equal((await r.book.history.list({ limit: 10 })).length, 1);
  r.watch.natsServer({ server: '127.0.0.1:4223', state: 'back' });
  await eventually('cleared', () => r.active().length === 0);
  await r.close();
});

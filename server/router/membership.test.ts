import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type NodeHeartbeat, Subjects } from '../bus/bus.ts';
import { manualMembership } from '../../testing/fake-membership.ts';
import { InProcessBus } from '../bus/inproc.ts';
import { Membership, startHeartbeat } from './membership.ts';
import { RendezvousRouter } from './rendezvous.ts';

function hb(nodeId: string, roles: string[], extra: Partial<NodeHeartbeat> = {}): NodeHeartbeat {
  return {
    nodeId,
    roles,
    release: 'test',
    startedAt: 1,
    ttlMs: 3000,
    draining: false,
    sessions: 0,
    rssBytes: 0,
    cpuSeconds: 0,
    ...extra,
  };
}

const setup = manualMembership;

describe('Membership', () => {
  test('heartbeats on the bus make nodes members, listed by id and filterable by role', async () => {
    const { bus, membership, changes } = setup();
    bus.publish(Subjects.heartbeat, hb('t2', ['transport']));
    bus.publish(Subjects.heartbeat, hb('e1', ['edge']));
    bus.publish(Subjects.heartbeat, hb('t1', ['transport', 'admin']));
    bus.publish(Subjects.heartbeat, hb('all1', ['all']));
    await bus.flush();
    assert.deepEqual(
      membership.nodes().map((n) => n.nodeId),
      ['all1', 'e1', 't1', 't2'],
    );
    assert.deepEqual(
      membership.nodes('transport').map((n) => n.nodeId),
      ['all1', 't1', 't2'],
    );
    assert.deepEqual(
      membership.nodes('edge').map((n) => n.nodeId),
      ['all1', 'e1'],
    );
    assert.equal(changes.length, 4);
    membership.stop();
    await bus.close();
  });

  test('repeated heartbeats do not signal a change; draining, roles and restarts do', async () => {
    const { bus, membership, changes } = setup();
    for (let i = 0; i < 5; i++) bus.publish(Subjects.heartbeat, hb('t1', ['transport'], { sessions: i }));
    await bus.flush();
    assert.equal(changes.length, 1);
    assert.equal(membership.nodes()[0]?.sessions, 4);
    bus.publish(Subjects.heartbeat, hb('t1', ['transport'], { draining: true }));
    bus.publish(Subjects.heartbeat, hb('t1', ['transport', 'edge'], { draining: true }));
    bus.publish(Subjects.heartbeat, hb('t1', ['transport', 'edge'], { draining: true, startedAt: 2 }));
    await bus.flush();
    assert.equal(changes.length, 4);
    membership.stop();
    await bus.close();
  });

  test('a node whose TTL passed without a heartbeat is swept out', async () => {
    const { bus, clock, membership, changes } = setup();
    bus.publish(Subjects.heartbeat, hb('t1', ['transport'], { ttlMs: 3000 }));
    bus.publish(Subjects.heartbeat, hb('t2', ['transport'], { ttlMs: 10_000 }));
    await bus.flush();
    clock.t += 2000;
    membership.sweep();
    assert.equal(membership.nodes().length, 2);
    bus.publish(Subjects.heartbeat, hb('t2', ['transport'], { ttlMs: 10_000 }));
    await bus.flush();
    clock.t += 1500;
    membership.sweep();
    assert.deepEqual(
      membership.nodes().map((n) => n.nodeId),
      ['t2'],
    );
    assert.deepEqual(changes.at(-1), ['t2']);
    membership.stop();
    await bus.close();
  });

  test('a sweep that runs late (this process stalled) drops nobody for the stall; real silence still counts', async () => {
    const bus = new InProcessBus();
    const clock = { t: 1_000_000, now: () => clock.t };
    const membership = new Membership({ bus, clock, sweepMs: 250 });
    membership.start();
    bus.publish(Subjects.heartbeat, hb('t1', ['transport'], { ttlMs: 3000 }));
    bus.publish(Subjects.heartbeat, hb('t2', ['transport'], { ttlMs: 3000 }));
    await bus.flush();
    // Frozen for 5 s: longer than the TTL, but the silence was this node's.
    clock.t += 5000;
    membership.sweep();
    assert.deepEqual(
      membership.nodes().map((n) => n.nodeId),
      ['t1', 't2'],
    );
    // Awake again, sweeping on time: t2 keeps beating, t1 is silent for more than its TTL.
    for (let i = 0; i < 13; i++) {
      clock.t += 250;
      bus.publish(Subjects.heartbeat, hb('t2', ['transport'], { ttlMs: 3000 }));
      await bus.flush();
      membership.sweep();
    }
    assert.deepEqual(
      membership.nodes().map((n) => n.nodeId),
      ['t2'],
    );
    membership.stop();
    await bus.close();
  });

  test('while its own bus connection is down nobody is swept out; back, each member gets a full TTL', async () => {
    const inner = new InProcessBus();
    const listeners = new Set<(up: boolean) => void>();
    const bus = Object.assign(Object.create(inner) as InProcessBus, {
      onConnection(listener: (up: boolean) => void) {
        listeners.add(listener);
        return () => listeners.delete(listener);
      },
    });
    const connection = (up: boolean) => {
      for (const l of listeners) l(up);
    };
    const clock = { t: 1_000_000, now: () => clock.t };
    const membership = new Membership({ bus, clock, sweepMs: 60_000 });
    membership.start();
    inner.publish(Subjects.heartbeat, hb('t1', ['transport'], { ttlMs: 3000 }));
    inner.publish(Subjects.heartbeat, hb('e1', ['edge'], { ttlMs: 3000 }));
    await inner.flush();
    connection(false);
    clock.t += 20_000;
    membership.sweep();
    assert.deepEqual(
      membership.nodes().map((n) => n.nodeId),
      ['e1', 't1'],
      'a deaf node keeps what it knew',
    );
    connection(true);
    clock.t += 2000;
    membership.sweep();
    assert.equal(membership.nodes().length, 2, 'within a TTL of the reconnect');
    inner.publish(Subjects.heartbeat, hb('t1', ['transport'], { ttlMs: 3000 }));
    await inner.flush();
    clock.t += 1500;
    membership.sweep();
    assert.deepEqual(
      membership.nodes().map((n) => n.nodeId),
      ['t1'],
      'one not heard within a TTL of the reconnect is out',
    );
    membership.stop();
    assert.equal(listeners.size, 0, 'stop stops listening to the connection');
    await inner.close();
  });

  test('a heartbeat with ttl 0 removes the node at once', async () => {
    const { bus, membership, changes } = setup();
    bus.publish(Subjects.heartbeat, hb('t1', ['transport']));
    await bus.flush();
    bus.publish(Subjects.heartbeat, hb('t1', ['transport'], { ttlMs: 0, draining: true }));
    bus.publish(Subjects.heartbeat, hb('t9', ['transport'], { ttlMs: 0 }));
    await bus.flush();
    assert.deepEqual(membership.nodes(), []);
    assert.deepEqual(changes, [['t1'], []]);
    membership.stop();
    await bus.close();
  });

  test('malformed heartbeats are ignored', async () => {
    const { bus, membership } = setup();
    for (const bad of [
      null,
      'x',
      { nodeId: 'a' },
      { nodeId: '', roles: [], ttlMs: 1 },
      { nodeId: 'a', roles: [1], ttlMs: 1 },
    ]) {
      bus.publish(Subjects.heartbeat, bad);
    }
    await bus.flush();
    assert.deepEqual(membership.nodes(), []);
    membership.stop();
    await bus.close();
  });

  test('after stop, heartbeats are no longer heard', async () => {
    const { bus, membership } = setup();
    membership.stop();
    bus.publish(Subjects.heartbeat, hb('t1', ['transport']));
    await bus.flush();
    assert.deepEqual(membership.nodes(), []);
    await bus.close();
  });
});

describe('startHeartbeat', () => {
  test('beats at once and on an interval; stop says goodbye so peers drop the node at once', async () => {
    const bus = new InProcessBus();
    const membership = new Membership({ bus });
    membership.start();
    const router = new RendezvousRouter(membership);
    const beats: NodeHeartbeat[] = [];
    bus.subscribe(Subjects.heartbeat, (m) => void beats.push(m.data as NodeHeartbeat));
    let sessions = 0;
    const stop = startHeartbeat(bus, () => hb('t1', ['transport'], { sessions: ++sessions }), 10);
    while (beats.length < 3) await new Promise((r) => setTimeout(r, 5));
    assert.equal(router.pick('dev'), 't1');
    stop();
    stop();
    const count = beats.length;
    await bus.flush();
    const last = beats.at(-1)!;
    assert.equal(last.ttlMs, 0);
    assert.equal(last.draining, true);
    assert.equal(router.pick('dev'), undefined);
    await new Promise((r) => setTimeout(r, 50));
    assert.ok(beats.length <= count + 1, 'no beat after stop');
    router.close();
    membership.stop();
    await bus.close();
  });
  test('a malformed heartbeat is ignored; one with fields of a newer release counts', async () => {
    const { bus, membership } = setup();
    bus.publish(Subjects.heartbeat, { nodeId: '', roles: ['edge'], ttlMs: 3000 });
    bus.publish(Subjects.heartbeat, { nodeId: 'x1', roles: 'edge', ttlMs: 3000 });
    bus.publish(Subjects.heartbeat, { nodeId: 'x2', roles: ['edge'], ttlMs: 'soon' });
    bus.publish(Subjects.heartbeat, 'not a heartbeat');
    bus.publish(Subjects.heartbeat, { ...hb('n1', ['transport']), accounts: { mail: 3 } });
    await bus.flush();
    assert.deepEqual(
      membership.nodes().map((n) => n.nodeId),
      ['n1'],
    );
  });
});

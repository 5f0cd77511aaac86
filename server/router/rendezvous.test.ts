import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { NodeHeartbeat } from '../bus/bus.ts';
import { hash64, type NodeSource, RendezvousRouter, rendezvousPick } from './rendezvous.ts';

/** IMEI-like keys: sequential numbers are the worst case for a weak hash. */
const keys = Array.from({ length: 100_000 }, (_, i) => `35693803${String(i).padStart(7, '0')}`);
const five = ['transport-a', 'transport-b', 'transport-c', 'transport-d', 'transport-e'];

function assignment(nodes: string[]): string[] {
  return keys.map((k) => rendezvousPick(k, nodes)!);
}

describe('rendezvousPick', () => {
  test('no nodes: undefined; one node: that node', () => {
    assert.equal(rendezvousPick('k', []), undefined);
    assert.equal(rendezvousPick('k', ['only']), 'only');
  });

  test('deterministic, and independent of the order of the node list', () => {
    const shuffled = [...five].reverse();
    for (const k of keys.slice(0, 2000)) {
      assert.equal(rendezvousPick(k, five), rendezvousPick(k, five));
      assert.equal(rendezvousPick(k, five), rendezvousPick(k, shuffled));
    }
    assert.deepEqual(hash64('356938035643809'), hash64('356938035643809'));
  });

  test('uniform over 100k keys and 5 nodes (chi-square, 4 degrees of freedom)', () => {
    const counts = new Map(five.map((n) => [n, 0]));
    for (const n of assignment(five)) counts.set(n, counts.get(n)! + 1);
    const expected = keys.length / five.length;
    const chi2 = [...counts.values()].reduce((sum, c) => sum + (c - expected) ** 2 / expected, 0);
    // p = 0.001 for 4 degrees of freedom is 18.47: a fair hash fails this 1 time in 1000.
    assert.ok(chi2 < 18.47, `chi-square ${chi2.toFixed(2)} for counts ${[...counts.values()]}`);
  });

  test('removing a node moves only the keys it held', () => {
    const before = assignment(five);
    const without = five.filter((n) => n !== 'transport-c');
    const after = assignment(without);
    let moved = 0;
    for (let i = 0; i < keys.length; i++) {
      if (before[i] !== 'transport-c') assert.equal(after[i], before[i], keys[i]);
      else moved++;
    }
    assert.ok(moved > 0);
  });

  test('adding a node moves about 1/(n+1) of the keys, all of them to the new node', () => {
    const before = assignment(five);
    const after = assignment([...five, 'transport-f']);
    let moved = 0;
    for (let i = 0; i < keys.length; i++) {
      if (after[i] !== before[i]) {
        assert.equal(after[i], 'transport-f');
        moved++;
      }
    }
    const share = moved / keys.length;
    // 1/6 ≈ 0.1667; the binomial standard deviation here is ~0.0012.
    assert.ok(Math.abs(share - 1 / 6) < 0.01, `moved ${share}`);
  });
});

class FakeMembership implements NodeSource {
  list: NodeHeartbeat[] = [];
  private listeners = new Set<() => void>();
  nodes(role?: string): NodeHeartbeat[] {
    return this.list.filter((n) => role === undefined || n.roles.includes(role));
  }
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  set(list: NodeHeartbeat[]): void {
    this.list = list;
    for (const l of this.listeners) l();
  }
}

function hb(nodeId: string, roles: string[], draining = false): NodeHeartbeat {
  return {
    nodeId,
    roles,
    release: 'test',
    startedAt: 0,
    ttlMs: 3000,
    draining,
    sessions: 0,
    rssBytes: 0,
    cpuSeconds: 0,
  };
}

describe('RendezvousRouter', () => {
  test('onLeave tells of a node that left, not of one that only drains, and how it left', () => {
    const membership = new FakeMembership();
    const router = new RendezvousRouter(membership);
    const left: string[] = [];
    const off = router.onLeave((id, how) => left.push(`${id}${how.draining ? ' drained' : ''}`));
    membership.set([hb('t1', ['transport']), hb('t2', ['transport']), hb('e1', ['edge'])]);
    membership.set([hb('t1', ['transport'], true), hb('t2', ['transport']), hb('e1', ['edge'])]);
    assert.deepEqual(left, [], 'draining is not leaving');
    membership.set([hb('t2', ['transport'])]);
    assert.deepEqual(left, ['t1 drained'], 'the edge is not a transport');
    membership.set([hb('t2', ['transport']), hb('t3', ['transport'])]);
    membership.set([hb('t2', ['transport'])]);
    assert.deepEqual(left, ['t1 drained', 't3'], 'a crash: not draining when it left');
    off();
    membership.set([]);
    assert.deepEqual(left, ['t1 drained', 't3']);
    router.close();
  });

  test('picks among live transport nodes and follows membership changes', () => {
    const membership = new FakeMembership();
    const router = new RendezvousRouter(membership);
    assert.equal(router.pick('dev-1'), undefined);
    membership.set([hb('t1', ['transport']), hb('e1', ['edge']), hb('t2', ['transport'])]);
    assert.deepEqual(router.nodeIds(), ['t1', 't2']);
    assert.equal(router.pick('dev-1'), rendezvousPick('dev-1', ['t1', 't2']));
    membership.set([hb('t2', ['transport'])]);
    assert.equal(router.pick('dev-1'), 't2');
    router.close();
    membership.set([hb('t1', ['transport'])]);
    assert.deepEqual(router.nodeIds(), ['t2'], 'a closed router no longer listens');
  });

  test('draining nodes take no new devices while another node serves', () => {
    const membership = new FakeMembership();
    const router = new RendezvousRouter(membership);
    membership.set([hb('t1', ['transport'], true), hb('t2', ['transport'])]);
    for (const k of keys.slice(0, 200)) assert.equal(router.pick(k), 't2');
    membership.set([hb('t1', ['transport'], true)]);
    assert.equal(router.pick('dev-1'), 't1');
    router.close();
  });

  test('another role can be routed the same way', () => {
    const membership = new FakeMembership();
    const router = new RendezvousRouter(membership, { role: 'transcoder' });
    membership.set([hb('t1', ['transport']), hb('x1', ['transcoder'])]);
    assert.equal(router.pick('anything'), 'x1');
    router.close();
  });
});

/**
 * The membership conformance suite (server/router/membership.ts), written
 * once and run on both kinds: heartbeats on the in-process bus (the
 * single-node gateway) and the members table on JetStream KV on a real
 * 3-server NATS cluster (cluster mode), by
 * test/integration/membership-conformance.test.ts. Each case gets a fresh
 * scope (a bus, or a table) in which it starts simulated nodes: a Membership
 * and this node's heartbeat or record, as server/node.ts wires them, with
 * the product's interval and TTL. Cases throw on failure.
 */
import assert from 'node:assert/strict';
import type { NodeHeartbeat } from '../server/bus/bus.ts';
import type { Membership } from '../server/router/membership.ts';
import { eventually } from './eventually.ts';
import { heartbeat } from './fake-membership.ts';

export const INTERVAL_MS = 1000;
export const TTL_MS = 3500;

export interface MemberNode {
  readonly id: string;
  readonly membership: Membership;
  /** What the node's next heartbeat or record says. */
  info: NodeHeartbeat;
  /** Sees these node ids (sorted), itself included. */
  ids(): string[];
  /** A clean stop: goodbye, record removed. */
  stop(): Promise<void>;
  /** Silent from now on, no goodbye, its connection gone: a kill -9. */
  crash(): Promise<void>;
}

export interface MembershipScope {
  start(id: string, roles: string[]): Promise<MemberNode>;
  /** Writes what a hostile or broken node might: not a heartbeat, a record under another node's id. */
  junk(): Promise<void>;
  close(): Promise<void>;
}

export interface MembershipBackend {
  name: string;
  /** A node that starts sees the others on its first read (the table); else after a heartbeat round. */
  firstReadComplete: boolean;
  scope(): Promise<MembershipScope>;
}

export interface MembershipCase {
  name: string;
  run(backend: MembershipBackend, scope: MembershipScope): Promise<void>;
}

const WAIT = { timeoutMs: 20_000, intervalMs: 25 };

/** A node's heartbeat as server/node.ts builds it, with the product's TTL. */
export function nodeInfo(id: string, roles: string[]): NodeHeartbeat {
  return heartbeat(id, { roles, ttlMs: TTL_MS, startedAt: Date.now(), sessions: 0 });
}

async function allSee(nodes: MemberNode[], ids: string[]): Promise<void> {
  const want = [...ids].sort();
  await eventually(
    `every node sees ${want.join(',')}`,
    () => nodes.every((n) => n.ids().join(',') === want.join(',')),
    WAIT,
  );
}

/** Resolves with the ms from now until `node` no longer sees `gone`. */
async function timeUntilGone(node: MemberNode, gone: string, timeoutMs: number): Promise<number> {
  const t0 = Date.now();
  await eventually(`${node.id} no longer sees ${gone}`, () => !node.ids().includes(gone), {
    timeoutMs,
    intervalMs: 10,
  });
  return Date.now() - t0;
}

export const membershipCases: MembershipCase[] = [
  {
    name: 'nodes see each other, by role; a node that starts sees the others at once (the table)',
    async run(backend, scope) {
      const a = await scope.start('a', ['transport']);
      const b = await scope.start('b', ['edge']);
      await allSee([a, b], ['a', 'b']);
      const c = await scope.start('c', ['transport', 'admin']);
      if (backend.firstReadComplete) {
        const first = c.ids();
        assert.ok(first.includes('a') && first.includes('b'), `the first read after the start: ${first}`);
      }
      await allSee([a, b, c], ['a', 'b', 'c']);
      assert.deepEqual(
        b.membership.nodes('transport').map((n) => n.nodeId),
        ['a', 'c'],
      );
    },
  },
  {
    name: 'a clean stop leaves every other node at once, well within the TTL',
    async run(_backend, scope) {
      const nodes = [await scope.start('a', ['edge']), await scope.start('b', ['transport'])];
      const c = await scope.start('c', ['transport']);
      await allSee([...nodes, c], ['a', 'b', 'c']);
      const stopping = c.stop();
      const took = await Promise.all(nodes.map((n) => timeUntilGone(n, 'c', TTL_MS)));
      await stopping;
      for (const ms of took) assert.ok(ms < TTL_MS, `left after ${ms} ms`);
    },
  },
  {
    name: 'a crash leaves after the TTL, not before',
    async run(_backend, scope) {
      const a = await scope.start('a', ['edge']);
      const b = await scope.start('b', ['transport']);
      await allSee([a, b], ['a', 'b']);
      const t0 = Date.now();
      await b.crash();
      await timeUntilGone(a, 'b', TTL_MS + 10_000);
      const took = Date.now() - t0;
      // The last heartbeat went at most an interval before the crash.
      assert.ok(took >= TTL_MS - INTERVAL_MS, `left ${took} ms after the crash, before its TTL`);
      assert.deepEqual(a.ids(), ['a']);
    },
  },
  {
    name: 'draining and new roles are changes; the monitor data (sessions) flows',
    async run(_backend, scope) {
      const a = await scope.start('a', ['edge']);
      const b = await scope.start('b', ['transport']);
      await allSee([a, b], ['a', 'b']);
      const changes: string[] = [];
      a.membership.onChange((nodes) =>
        changes.push(nodes.map((n) => `${n.nodeId}${n.draining ? '!' : ''}`).join(',')),
      );
      b.info = { ...b.info, sessions: 7 };
      await eventually('a sees b serve 7 sessions', () => seen(a, 'b')?.sessions === 7, WAIT);
      assert.deepEqual(changes, [], 'more sessions is no membership change');
      b.info = { ...b.info, draining: true };
      await eventually('a sees b draining', () => seen(a, 'b')?.draining === true, WAIT);
      b.info = { ...b.info, roles: ['transport', 'edge'] };
      await eventually('a sees b serve edge too', () => a.membership.nodes('edge').length === 2, WAIT);
      assert.deepEqual(changes, ['a,b!', 'a,b!']);
    },
  },
  {
    name: 'hostile heartbeats or records are ignored',
    async run(_backend, scope) {
      const a = await scope.start('a', ['edge']);
      await scope.junk();
      const b = await scope.start('b', ['transport']);
      await allSee([a, b], ['a', 'b']);
      assert.deepEqual(a.ids(), ['a', 'b']);
    },
  },
];

function seen(node: MemberNode, id: string): NodeHeartbeat | undefined {
  return node.membership.nodes().find((n) => n.nodeId === id);
}

/**
 * The membership conformance suite (testing/membership-conformance.ts) on both
 * kinds: heartbeats on the in-process bus, and the members table on JetStream
 * KV on a real 3-server NATS cluster (R3); then the faults of cluster mode: a
 * NATS server killed (the bucket's stream leader) and every server down for
 * longer than the TTL make nobody leave, and a node process killed with
 * SIGKILL leaves after its TTL.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { type NodeHeartbeat, Subjects } from '../../server/bus/bus.ts';
import { InProcessBus } from '../../server/bus/inproc.ts';
import {
  Membership,
  readMemberRecord,
  startHeartbeat,
  startMemberRecord,
} from '../../server/router/membership.ts';
import { NatsKvSharedState } from '../../server/store/shared/nats-kv.ts';
import { eventually } from '../../testing/index.ts';
import {
  INTERVAL_MS,
  type MemberNode,
  type MembershipBackend,
  type MembershipScope,
  membershipCases,
  nodeInfo,
  TTL_MS,
} from '../../testing/membership-conformance.ts';
import { freshTableName } from '../../testing/store/shared-state-conformance.ts';
import { type NatsCluster, startNatsCluster } from '../harness/nats-cluster.ts';

const ids = (m: Membership) => m.nodes().map((n) => n.nodeId);

const inProcess: MembershipBackend = {
  name: 'heartbeats on the in-process bus',
  firstReadComplete: false,
  async scope(): Promise<MembershipScope> {
    const bus = new InProcessBus();
    const closers: Array<() => void> = [];
    return {
      async start(id, roles) {
        const membership = new Membership({ bus, sweepMs: 250 });
        membership.start();
        let crashed = false;
        const node: MemberNode = {
          id,
          membership,
          info: nodeInfo(id, roles),
          ids: () => ids(membership),
          async stop() {
            stopBeats();
            membership.stop();
          },
          async crash() {
            // A beat that throws is not sent: silence, and no goodbye when the timer is cleared.
            crashed = true;
            membership.stop();
          },
        };
        const stopBeats = startHeartbeat(
          bus,
          () => {
            if (crashed) throw new Error('crashed');
            return node.info;
          },
          INTERVAL_MS,
        );
        membership.observe(node.info);
        closers.push(stopBeats, () => membership.stop());
        return node;
      },
      async junk() {
        for (const bad of [null, 'x', { nodeId: '', roles: [], ttlMs: 1 }, { nodeId: 'j', roles: 'edge' }]) {
          bus.publish(Subjects.heartbeat, bad);
        }
        await bus.flush();
      },
      async close() {
        for (const c of closers) c();
        await bus.close();
      },
    };
  },
};

let cluster: NatsCluster;

/** A node of cluster mode: its own connection, the members table read and its record written. */
async function tableNode(table: string, id: string, roles: string[]) {
  const state = await NatsKvSharedState.connect({ servers: cluster.urls, replicas: 3, name: id });
  const rows = await state.table<NodeHeartbeat>(table, { read: readMemberRecord }).catch(async (err) => {
    await state.close();
    throw err;
  });
  // Its own silent bus: in cluster mode the table is the membership.
  const bus = new InProcessBus();
  const membership = new Membership({ bus, sweepMs: 250 });
  membership.start();
  membership.attachTable(rows, { probeMs: INTERVAL_MS });
  let crashed = false;
  const node: MemberNode & { close(): Promise<void> } = {
    id,
    membership,
    info: nodeInfo(id, roles),
    ids: () => ids(membership),
    async stop() {
      await record.stop();
      await node.close();
    },
    async crash() {
      crashed = true;
      await node.close();
    },
    async close() {
      membership.stop();
      await state.close();
      await bus.close();
    },
  };
  const record = startMemberRecord(
    rows,
    () => {
      if (crashed) throw new Error('crashed');
      return { ...node.info, memberTable: true };
    },
    { intervalMs: INTERVAL_MS },
  );
  return Object.assign(node, { record });
}

const jetStream = {
  name: 'the members table on JetStream KV (3 servers, R3)',
  firstReadComplete: true,
  async scope(): Promise<MembershipScope & { table: string }> {
    const table = freshTableName();
    const nodes: Array<Awaited<ReturnType<typeof tableNode>>> = [];
    return {
      table,
      async start(id, roles) {
        const node = await tableNode(table, id, roles);
        nodes.push(node);
        return node;
      },
      async junk() {
        const state = await NatsKvSharedState.connect({ servers: cluster.urls, replicas: 3 });
        const raw = await state.table<unknown>(table, { read: (x) => x });
        await raw.create('junk', { nodeId: 'junk', roles: 'edge', ttlMs: 3500 });
        await raw.create('liar', nodeInfo('someone-else', ['edge']));
        await raw.create('bytes', 'not even an object');
        await state.close();
      },
      async close() {
        for (const n of nodes) {
          await n.record.stop();
          await n.close().catch(() => {});
        }
      },
    };
  },
};

before(async () => {
  cluster = await startNatsCluster({ size: 3 });
});

after(async () => {
  await cluster?.stop();
});

for (const backend of [inProcess, jetStream] as MembershipBackend[]) {
  describe(`membership conformance: ${backend.name}`, () => {
    for (const c of membershipCases) {
      test(c.name, async () => {
        const scope = await backend.scope();
        try {
          await c.run(backend, scope);
        } finally {
          await scope.close();
        }
      });
    }
  });
}

/** Records every membership change of each node that dropped one of `everyone`. */
function watchLosses(nodes: MemberNode[], everyone: string[]): string[] {
  const losses: string[] = [];
  for (const n of nodes) {
    n.membership.onChange((live) => {
      const have = new Set(live.map((h) => h.nodeId));
      const lost = everyone.filter((id) => !have.has(id));
      if (lost.length > 0) losses.push(`${n.id} lost ${lost.join(',')}`);
    });
  }
  return losses;
}

async function streamLeader(table: string): Promise<string | undefined> {
  const nc = await connect({ servers: cluster.urls });
  try {
    const jsm = await jetstreamManager(nc);
    return (await jsm.streams.info(`KV_mmgw_${table}`)).cluster?.leader;
  } finally {
    await nc.close();
  }
}

describe('the members table on JetStream: faults', () => {
  test('the server that leads the members bucket killed: nobody leaves', async () => {
    const scope = await jetStream.scope();
    try {
      const nodes = [
        await scope.start('a', ['edge']),
        await scope.start('b', ['transport']),
        await scope.start('c', ['transport']),
      ];
      await eventually('all see all', () => nodes.every((n) => n.ids().length === 3), { timeoutMs: 20_000 });
      const table = (nodes[0]!.membership as unknown as { table: { rows: { name: string } } }).table.rows
        .name;
      const leader = await streamLeader(table);
      const victim = cluster.members.find((m) => m.name === leader) ?? cluster.members[0]!;
      const losses = watchLosses(nodes, ['a', 'b', 'c']);
      await victim.kill('SIGKILL');
      try {
        // Three TTLs: a new stream leader is elected and writes go on meanwhile.
        await new Promise((r) => setTimeout(r, 3 * TTL_MS));
        assert.deepEqual(losses, [], `with ${victim.name} (leader ${leader}) killed`);
      } finally {
        await victim.start();
        await cluster.jetStreamReady();
      }
      assert.deepEqual(losses, [], `after ${victim.name} came back`);
    } finally {
      await scope.close();
    }
  });

  test('every server down for twice the TTL: nobody leaves; back, a clean stop still leaves at once', async () => {
    const scope = await jetStream.scope();
    try {
      const nodes = [await scope.start('a', ['edge']), await scope.start('b', ['transport'])];
      const c = await scope.start('c', ['transport']);
      await eventually('all see all', () => [...nodes, c].every((n) => n.ids().length === 3), {
        timeoutMs: 20_000,
      });
      const losses = watchLosses([...nodes, c], ['a', 'b', 'c']);
      await Promise.all(cluster.members.map((m) => m.kill('SIGKILL')));
      try {
        await new Promise((r) => setTimeout(r, 2 * TTL_MS));
        assert.deepEqual(losses, [], 'while every server is down');
      } finally {
        await Promise.all(cluster.members.map((m) => m.start()));
        await cluster.jetStreamReady();
      }
      // Writes and probes come back; everyone gets a whole TTL from then.
      await new Promise((r) => setTimeout(r, 2 * TTL_MS));
      assert.deepEqual(losses, [], 'after the servers came back');
      losses.length = 0;
      await c.stop();
      await eventually('c left a and b', () => nodes.every((n) => !n.ids().includes('c')), {
        timeoutMs: TTL_MS,
      });
    } finally {
      await scope.close();
    }
  });

  test('a node process killed with SIGKILL leaves after its TTL', async () => {
    const scope = await jetStream.scope();
    try {
      const a = await scope.start('a', ['edge']);
      const child = spawn(
        process.execPath,
        [
          '--import',
          'tsx',
          fileURLToPath(new URL('../../testing/member-child.ts', import.meta.url)),
          scope.table,
          'k9',
          ...cluster.urls,
        ],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      );
      const exited = new Promise((r) => child.once('exit', r));
      try {
        await eventually('a sees the child node', () => a.ids().includes('k9'), { timeoutMs: 30_000 });
        const t0 = Date.now();
        child.kill('SIGKILL');
        await exited;
        await eventually('the killed node left', () => !a.ids().includes('k9'), {
          timeoutMs: TTL_MS + 10_000,
          intervalMs: 10,
        });
        const took = Date.now() - t0;
        assert.ok(took >= TTL_MS - INTERVAL_MS, `left ${took} ms after the kill, before its TTL`);
        process.stdout.write(`# kill -9 to leave: ${took} ms (TTL ${TTL_MS} ms)\n`);
      } finally {
        child.kill('SIGKILL');
      }
    } finally {
      await scope.close();
    }
  });
});

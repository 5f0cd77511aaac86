/**
 * The members table with real `mmgw start` processes on a 3-server NATS
 * cluster: a node writes its row (and says so in its bus heartbeats), a node
 * that starts sees the others on its first read of the table, SIGTERM removes
 * the row at once, and a node killed with SIGKILL leaves a reader's
 * membership after its TTL, which then removes the stale row.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { type NodeHeartbeat, Subjects } from '../../server/bus/bus.ts';
import { createBus } from '../../server/bus/index.ts';
import { InProcessBus } from '../../server/bus/inproc.ts';
import { MEMBERS_TABLE } from '../../server/router/cluster-members.ts';
import { Membership, readMemberRecord } from '../../server/router/membership.ts';
import { NatsKvSharedState } from '../../server/store/shared/nats-kv.ts';
import type { SharedTable } from '../../server/store/shared/table.ts';
import { eventually } from '../../testing/index.ts';
import { type Gateway, startGateway } from '../harness/gateway.ts';
import { type NatsCluster, startNatsCluster } from '../harness/nats-cluster.ts';

const TTL_MS = 3500;
let cluster: NatsCluster;
let state: NatsKvSharedState;
let rows: SharedTable<NodeHeartbeat>;
const gateways: Gateway[] = [];

before(async () => {
  cluster = await startNatsCluster({ size: 3 });
  state = await NatsKvSharedState.connect({ servers: cluster.urls, replicas: 3, name: 'reader' });
  rows = await state.table<NodeHeartbeat>(MEMBERS_TABLE, { read: readMemberRecord });
});

after(async () => {
  for (const g of gateways) await g.stop().catch(() => {});
  await state?.close();
  await cluster?.stop();
});

function node(id: string, role: string): Promise<Gateway> {
  return startGateway({
    args: ['--role', role, '--engine', 'portable', '--bus', cluster.urls.join(','), '--node-id', id],
  }).then((g) => {
    gateways.push(g);
    return g;
  });
}

test('rows of real nodes: written, seen at once by a new node, removed on SIGTERM, stale after SIGKILL', async () => {
  const bus = await createBus({ kind: 'nats', url: cluster.urls.join(','), name: 'beats' });
  const beats: NodeHeartbeat[] = [];
  bus.subscribe(Subjects.heartbeat, (m) => void beats.push(m.data as NodeHeartbeat));
  try {
    const t1 = await node('mt-t1', 'transcoder');
    await eventually('t1 has its row', () => rows.get('mt-t1')?.value.memberTable === true, {
      timeoutMs: 30_000,
    });
    await eventually('t1 says on the bus that it writes the table', () =>
      beats.some((b) => b.nodeId === 'mt-t1' && b.memberTable === true),
    );
    const t2 = await node('mt-t2', 'transcoder');
    await eventually('t2 has its row', () => rows.get('mt-t2'), { timeoutMs: 30_000 });

    // A reader of the table, as every node is: it judges and removes stale rows.
    const membership = new Membership({ bus: new InProcessBus() });
    membership.start();
    membership.attachTable(rows);
    try {
      assert.deepEqual(
        membership.nodes().map((n) => n.nodeId),
        ['mt-t1', 'mt-t2'],
        'both on the first read',
      );
      const stopping = Date.now();
      await t1.stop('SIGTERM');
      await eventually('t1 left', () => !membership.nodes().some((n) => n.nodeId === 'mt-t1'), {
        timeoutMs: TTL_MS,
        intervalMs: 10,
      });
      assert.equal(rows.get('mt-t1'), undefined, 'SIGTERM removed the row');
      const termMs = Date.now() - stopping;
      const killedAt = Date.now();
      t2.kill();
      assert.ok(rows.get('mt-t2'), 'a killed node leaves its row behind');
      await eventually('t2 left', () => !membership.nodes().some((n) => n.nodeId === 'mt-t2'), {
        timeoutMs: TTL_MS + 10_000,
        intervalMs: 10,
      });
      const killMs = Date.now() - killedAt;
      assert.ok(killMs >= TTL_MS - 1000, `left ${killMs} ms after SIGKILL, before its TTL`);
      await eventually('the stale row is removed', () => rows.get('mt-t2') === undefined);
      process.stdout.write(
        `# SIGTERM to gone (incl. the drain): ${termMs} ms; SIGKILL to gone: ${killMs} ms\n`,
      );
    } finally {
      membership.stop();
    }
  } finally {
    await bus.close();
  }
});

/**
 * The node monitor across processes over NATS: an admin node sees an edge
 * node join, lists it, raises node_gone when it is killed without draining,
 * and a drained node leaves without an alarm.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { eventually } from '../../testing/index.ts';
import { startGateway } from '../harness/gateway.ts';
import { startNatsServer } from '../harness/nats.ts';
import { ADMIN, ApiClient, WAIT } from './admin-api-helpers.ts';

test('nodes over NATS: listed, drained one leaves quietly, killed one raises node_gone', async (t) => {
  const nats = await startNatsServer();
  t.after(() => nats.stop());
  const tag = `${process.pid}`;
  const admin = await startGateway({
    args: ['--role', 'admin,transport', '--bus', nats.url, '--node-id', `adm-${tag}`],
    env: { MMGW_ADMIN_NAME: ADMIN.name, MMGW_ADMIN_PASSWORD: ADMIN.password },
  });
  t.after(() => admin.stop());
  const edges = await Promise.all(
    ['e1', 'e2'].map((n) =>
      startGateway({
        args: ['--role', 'edge', '--engine', 'portable', '--bus', nats.url, '--node-id', `${n}-${tag}`],
      }),
    ),
  );
  t.after(() => Promise.all(edges.map((e) => e.stop())));
  const api = await ApiClient.as(admin.adminUrl, ADMIN.name, ADMIN.password);
  const nodes = async () =>
    (await api.call('GET', '/nodes')).json.items as Array<{
      nodeId: string;
      status: string;
      roles: string[];
    }>;
  await eventually(
    'both edges listed',
    async () => {
      const list = await nodes();
      return ['e1', 'e2'].every((n) => list.some((x) => x.nodeId === `${n}-${tag}` && x.status === 'up'))
        ? true
        : undefined;
    },
    WAIT,
  );
  assert.deepEqual((await nodes()).find((n) => n.nodeId === `e1-${tag}`)?.roles, ['edge']);

  // e1 is drained from the API: it exits, and no alarm is raised for it.
  const [e1, e2] = edges;
  assert.ok(e1 && e2);
  const exited = new Promise((resolve) => e1.process.once('exit', resolve));
  assert.equal((await api.call('POST', `/nodes/e1-${tag}/drain`, { reason: 'test' })).status, 202);
  await exited;
  // e2 is killed: node_gone.
  e2.kill();
  const alarm = await eventually(
    'node_gone for e2',
    async () => {
      const r = await api.call('GET', '/alarms?active=true');
      return r.json.items.find(
        (a: { kind: string; subject: string }) => a.kind === 'node_gone' && a.subject === `e2-${tag}`,
      );
    },
    WAIT,
  );
  assert.equal(alarm.severity, 'critical');
  await eventually(
    'e1 gone too',
    async () => ((await nodes()).find((n) => n.nodeId === `e1-${tag}`)?.status === 'gone' ? true : undefined),
    WAIT,
  );
  const alarms = (await api.call('GET', '/alarms')).json.items as Array<{ subject: string }>;
  assert.equal(alarms.filter((a) => a.subject === `e1-${tag}`).length, 0, 'a drained node raises no alarm');
  assert.equal((await nodes()).find((n) => n.nodeId === `e2-${tag}`)?.status, 'gone');
});

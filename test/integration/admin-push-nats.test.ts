/**
 * A device's wake-up channels in the admin API across processes over NATS
 * (issue 14): an admin + edge node and two transport nodes. Without
 * JetStream each transport keeps the channels of the devices it serves in its
 * own lmdb (only the device's own transport has them); with it they are the
 * shared table `push_reg`. Devices are added until both transports serve
 * some; the admin node asks each device's transport, the one its router
 * picks as the edge's did, and lists and removes exactly that device's
 * channel; with JetStream, a device whose transport was killed is answered
 * by the survivor. Before any transport is up, the list answers 503.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Handset } from '../../device-protocol/handset.ts';
import { eventually } from '../../testing/index.ts';
import { type Gateway, nextImei, startGateway, waitReady } from '../harness/gateway.ts';
import { type NatsServerHandle, startNatsServer } from '../harness/nats.ts';
import { type PushService, startPushService } from '../harness/push-service.ts';
import { ADMIN, ApiClient, assertError, WAIT } from './admin-api-helpers.ts';
import { handsetFor } from './e2e-suite.ts';

interface Registered {
  imei: string;
  node: string;
  id: string;
}

/** Without JetStream each transport keeps its own; with it they are the shared table `push_reg`. */
const suite = (jetstream: boolean) => () => {
  let nats: NatsServerHandle;
  let push: PushService;
  let front: Gateway;
  let transports: Gateway[] = [];
  let api: ApiClient;
  const registered: Registered[] = [];
  const open: Handset[] = [];
  const tag = `${process.pid}${jetstream ? 'js' : ''}`;
  const nodeIds = [`t1-${tag}`, `t2-${tag}`];

  before(async () => {
    nats = await startNatsServer({ jetstream });
    push = await startPushService();
    front = await startGateway({
      args: ['--role', 'admin,edge', '--engine', 'portable', '--bus', nats.url, '--node-id', `front-${tag}`],
      env: { MMGW_ADMIN_NAME: ADMIN.name, MMGW_ADMIN_PASSWORD: ADMIN.password },
    });
    // Not ready (/readyz) before a transport is: the admin API answers already.
    api = await ApiClient.as(front.adminUrl, ADMIN.name, ADMIN.password);
    assert.equal((await api.call('POST', '/operators', { id: 'op1', name: 'Operator 1' })).status, 201);
    // No transport yet: nobody to ask.
    const early = await api.call('POST', '/devices', { imei: nextImei(), operator: 'op1' });
    assert.equal(early.status, 201, early.text);
    const r = await api.call('GET', `/devices/${early.json.device.imei}/wakeup-channels`);
    assertError(r, 503, 'request.unavailable');
    assert.equal(r.json.error.message, 'no transport node is up to ask for the wake-up channels');
    transports = await Promise.all(
      nodeIds.map((id) =>
        startGateway({
          args: ['--role', 'transport', '--bus', nats.url, '--node-id', id],
          env: { NODE_EXTRA_CA_CERTS: push.caFile },
        }),
      ),
    );
    await Promise.all([front, ...transports].map((g) => waitReady(g)));
    await eventually(
      'both transports seen by the admin node',
      async () => {
        const items = (await api.call('GET', '/nodes')).json.items as { nodeId: string; status: string }[];
        return nodeIds.every((id) => items.some((n) => n.nodeId === id && n.status === 'up'));
      },
      WAIT,
    );
  });
  after(async () => {
    for (const h of open) await h.close().catch(() => {});
    await Promise.all([front?.stop(), ...transports.map((t) => t.stop())]);
    await push?.stop();
    await nats?.stop();
  });

  test('devices until both transports serve one, each with a Web Push channel', async () => {
    for (let n = 0; n < 16 && !nodeIds.every((id) => registered.some((r) => r.node === id)); n++) {
      const r = await api.call('POST', '/devices', { imei: nextImei(), operator: 'op1' });
      assert.equal(r.status, 201, r.text);
      const dev = { imei: r.json.device.imei as string, secret: r.json.secret as string };
      const h = handsetFor(front, dev);
      open.push(h);
      await h.connect();
      const { nodeId } = await h.request<{ nodeId: string }>('sys.info');
      const id = await h.registerPush(push.subscribe());
      registered.push({ imei: dev.imei, node: nodeId, id });
      await h.close();
    }
    assert.deepEqual(
      [...new Set(registered.map((r) => r.node))].sort(),
      nodeIds,
      'both transports serve devices',
    );
  });

  test('the admin lists each device’s channel; with JetStream, still when its transport is gone', async () => {
    for (const { imei, id } of registered) {
      const r = await api.call('GET', `/devices/${imei}/wakeup-channels`);
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(
        r.json.items.map((c: any) => [c.id, c.kind, c.channel]),
        [[id, 'webpush', push.origin]],
        imei,
      );
    }
    if (!jetstream) return;
    // t1 dies: once the admin's membership lets it go, t2 answers for its devices from push_reg.
    const [t1] = transports;
    t1!.kill();
    const { imei, id } = registered.find((r) => r.node === nodeIds[0])!;
    const listed = await eventually(
      't1’s device listed by t2',
      async () => {
        const r = await api.call('GET', `/devices/${imei}/wakeup-channels`);
        return r.status === 200 ? r.json.items : undefined;
      },
      WAIT,
    );
    assert.deepEqual(
      listed.map((c: any) => c.id),
      [id],
    );
    assert.equal((await api.call('DELETE', `/devices/${imei}/wakeup-channels/${id}`)).status, 204);
    assert.deepEqual((await api.call('GET', `/devices/${imei}/wakeup-channels`)).json.items, []);
  });

  test('without JetStream, the admin removes each device’s channel on its own transport', {
    skip: jetstream,
  }, async () => {
    for (const node of nodeIds) {
      const { imei, id } = registered.find((r) => r.node === node)!;
      assert.equal((await api.call('DELETE', `/devices/${imei}/wakeup-channels/${id}`)).status, 204, node);
      assert.deepEqual((await api.call('GET', `/devices/${imei}/wakeup-channels`)).json.items, [], node);
    }
  });
};

describe('admin API: wake-up channels on two transport nodes over NATS, each its own', suite(false));
describe('admin API: wake-up channels on two transport nodes over NATS with JetStream', suite(true));

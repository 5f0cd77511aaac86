/**
 * Cluster mode (3 nats-servers with JetStream, 2 admin nodes, 1 edge): the
 * edge authenticates Hello and Resume from its watched copy of the shared
 * `device_auth` table. A device added through admin 1 is answered by admin 2;
 * with both admins killed, a connected device resumes and a device that never
 * connected before still connects; a wrong secret is still refused.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GatewayError } from '../../device-protocol/errors.ts';
import { type ErrorFrame, Kind } from '../../device-protocol/messages.ts';
import { type DeviceInfo, Subjects } from '../../server/bus/bus.ts';
import { connectNatsBus } from '../../server/bus/nats.ts';
import { eventually } from '../../testing/index.ts';
import { nextImei, startGateway } from '../harness/gateway.ts';
import { startNatsCluster } from '../harness/nats-cluster.ts';
import { ADMIN, ApiClient, WAIT } from './admin-api-helpers.ts';
import { rawClient } from './edge-client.ts';

test('edges authenticate from the shared copy: two admins share devices, and with both down devices connect', async (t) => {
  const cluster = await startNatsCluster({ size: 3 });
  t.after(() => cluster.stop());
  const bus = cluster.urls.join(',');
  const tag = `${process.pid}`;
  const admins = await Promise.all(
    ['a1', 'a2'].map((n) =>
      startGateway({
        args: ['--role', 'admin', '--bus', bus, '--node-id', `${n}-${tag}`],
        env: { MMGW_ADMIN_NAME: ADMIN.name, MMGW_ADMIN_PASSWORD: ADMIN.password },
      }),
    ),
  );
  t.after(() => Promise.all(admins.map((a) => a.stop())));
  const edge = await startGateway({
    args: ['--role', 'edge', '--engine', 'portable', '--bus', bus, '--node-id', `e1-${tag}`],
  });
  t.after(() => edge.stop());
  const [a1, a2] = admins;
  assert.ok(a1 && a2);

  const api = await ApiClient.as(a1.adminUrl, ADMIN.name, ADMIN.password);
  const op = await api.call('POST', '/operators', { id: 'op', name: 'Op' });
  assert.equal(op.status, 201, op.text);
  const add = async (): Promise<{ imei: string; secret: string }> => {
    const imei = nextImei();
    const r = await api.call('POST', '/devices', { imei, operator: 'op' });
    assert.equal(r.status, 201, r.text);
    return { imei, secret: r.json.secret as string };
  };
  const early = await add();
  const fresh = await add();

  const first = await rawClient('ws', edge.devicePort);
  t.after(() => first.kill());
  const welcome = await first.hello(early.imei, { secret: early.secret });

  // Admin 2 (its own data directory) answers for a device admin 1 added, once admin 1 is gone.
  a1.kill();
  const probe = await connectNatsBus({ servers: bus, name: `probe-${tag}` });
  t.after(() => probe.close());
  const info = await eventually(
    'admin 2 authenticates the device admin 1 added',
    async () => {
      try {
        return await probe.request<DeviceInfo>(
          Subjects.registryAuth,
          { op: 'authenticate', imei: fresh.imei, secret: fresh.secret },
          { timeoutMs: 2000 },
        );
      } catch (err) {
        // Only "nobody answers yet" is waited out: auth.unknown_device would fail the test.
        if (err instanceof GatewayError && err.code.startsWith('bus.')) return undefined;
        throw err;
      }
    },
    WAIT,
  );
  assert.equal(info.imei, fresh.imei);
  assert.equal(info.status, 'enabled');

  // Every admin down: the edge answers from its copy.
  a2.kill();
  await eventually(
    'no admin answers on the bus any more',
    async () => {
      try {
        await probe.request(Subjects.registryAuth, { op: 'lookup', imei: fresh.imei }, { timeoutMs: 1000 });
        return false;
      } catch (err) {
        return err instanceof GatewayError && err.code.startsWith('bus.');
      }
    },
    WAIT,
  );
  const newcomer = await rawClient('ws', edge.devicePort);
  t.after(() => newcomer.kill());
  const w2 = await newcomer.hello(fresh.imei, { secret: fresh.secret });
  assert.equal(w2.kind, Kind.Welcome);

  // The connected device loses its carrier and resumes (a lookup of the copy).
  first.kill();
  const again = await rawClient('ws', edge.devicePort);
  t.after(() => again.kill());
  const resumed = await again.resumeAnswer(welcome, 0);
  assert.equal(resumed.kind, Kind.Welcome, (resumed as ErrorFrame).code);

  // The copy still refuses a wrong secret, as the registry would.
  const wrong = await rawClient('ws', edge.devicePort);
  t.after(() => wrong.kill());
  const refused = await wrong.helloAnswer(early.imei, { secret: `${early.secret.slice(0, -2)}xx` });
  assert.equal(refused.kind, Kind.Error);
  assert.equal((refused as ErrorFrame).code, 'auth.bad_secret');
});

/**
 * Several admin nodes on one registry (3 nats-servers with JetStream, R3
 * buckets; 2 admin nodes with data directories of their own; 1 edge): a
 * device added through admin 1's API is read, edited and given a
 * provisioned account through admin 2's API; with admin 1 killed (-9),
 * admin 2 still serves everything, and a device added while admin 1 is down
 * connects through the edge.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type ErrorFrame, Kind } from '../../device-protocol/messages.ts';
import { eventually } from '../../testing/index.ts';
import { nextImei, startGateway } from '../harness/gateway.ts';
import { startAdminCluster } from './admin-cluster.ts';
import { ADMIN, ApiClient, WAIT } from './admin-api-helpers.ts';
import { rawClient } from './edge-client.ts';

const PRESET = 'Corp mail';

test('two admin nodes serve one registry from JetStream KV; one killed, the other serves all', async (t) => {
  const { bus, tag, a1, a2 } = await startAdminCluster(t);
  const edge = await startGateway({
    args: ['--role', 'edge', '--engine', 'portable', '--bus', bus, '--node-id', `e1-${tag}`],
  });
  t.after(() => edge.stop());

  // Both nodes raced to create the first admin from the environment: one user, on both.
  const api1 = await ApiClient.as(a1.adminUrl, ADMIN.name, ADMIN.password);
  const api2 = await ApiClient.as(a2.adminUrl, ADMIN.name, ADMIN.password);
  const users = await api2.call('GET', '/users');
  assert.deepEqual(
    (users.json.items as Array<{ name: string }>).map((u) => u.name),
    [ADMIN.name],
  );

  const op = await api1.call('POST', '/operators', { id: 'op', name: 'Op' });
  assert.equal(op.status, 201, op.text);
  const sp = await api1.call('POST', '/service-profiles', {
    id: 'full',
    name: 'full',
    services: ['mail'],
    policies: { maxAttachmentBytes: 1_000_000, bodyTruncateBytes: 10_000, imageQuality: 60 },
    accounts: [
      {
        service: 'mail',
        label: PRESET,
        imapHost: 'mail.example.test',
        imapPort: 143,
        smtpHost: 'mail.example.test',
        smtpPort: 25,
        tls: false,
      },
    ],
  });
  assert.equal(sp.status, 201, sp.text);
  const imei = nextImei();
  const added = await api1.call('POST', '/devices', { imei, operator: 'op' });
  assert.equal(added.status, 201, added.text);

  // Admin 2 reads it (its copy follows the bucket), edits it and provisions its account.
  const seen = await eventually(
    'admin 2 shows the device admin 1 added',
    async () => {
      const r = await api2.call('GET', `/devices/${imei}`);
      return r.status === 200 ? r : undefined;
    },
    WAIT,
  );
  assert.equal(seen.json.operator, 'op');
  const patched = await api2.call('PATCH', `/devices/${imei}`, { serviceProfile: 'full' });
  assert.equal(patched.status, 200, patched.text);
  const account = await api2.call('PUT', `/devices/${imei}/accounts/${encodeURIComponent(PRESET)}`, {
    address: 'bob@example.test',
    password: 'bob-mail-password',
  });
  assert.equal(account.status, 201, account.text);
  // ...and admin 1 sees both changes.
  await eventually(
    'admin 1 sees the edit and the account',
    async () => {
      const d = await api1.call('GET', `/devices/${imei}`);
      const a = await api1.call('GET', `/devices/${imei}/accounts`);
      return d.json.serviceProfile === 'full' && (a.json.items as unknown[]).length === 1;
    },
    WAIT,
  );
  // The IMEI is one key cluster-wide: admin 2 cannot add it again.
  const again = await api2.call('POST', '/devices', { imei, operator: 'op' });
  assert.equal(again.status, 409, again.text);

  // Admin 1 is killed: admin 2 serves every record, and takes new devices.
  a1.kill();
  const list = await api2.call('GET', '/devices');
  assert.deepEqual(
    (list.json.items as Array<{ imei: string }>).map((d) => d.imei),
    [imei],
  );
  const accounts = await api2.call('GET', `/devices/${imei}/accounts`);
  assert.deepEqual(
    (accounts.json.items as Array<{ label: string; secret?: unknown }>).map((a) => [a.label, a.secret]),
    [[PRESET, undefined]],
  );
  const ops = await api2.call('GET', '/operators');
  assert.deepEqual(
    (ops.json.items as Array<{ id: string }>).map((o) => o.id),
    ['op'],
  );
  const newcomer = nextImei();
  const made = await api2.call('POST', '/devices', { imei: newcomer, operator: 'op' });
  assert.equal(made.status, 201, made.text);

  // The device added while admin 1 is down connects through the edge.
  const welcome = await eventually(
    'the new device connects',
    async () => {
      const client = await rawClient('ws', edge.devicePort);
      t.after(() => client.kill());
      const answer = await client.helloAnswer(newcomer, { secret: made.json.secret as string });
      if (answer.kind === Kind.Welcome) return answer;
      client.kill();
      // Only "not published yet" is waited out: any other refusal fails the test.
      assert.equal((answer as ErrorFrame).code, 'auth.unknown_device');
      return undefined;
    },
    WAIT,
  );
  assert.equal(welcome.kind, Kind.Welcome);
});

/**
 * `mmgw operator|device|admin` on a cluster registry (3 nats-servers with
 * JetStream, R3 buckets): with the cluster's bus in the environment (as every
 * node of docker/compose.cluster.yml has it) the commands write the registry
 * in JetStream KV that a running admin node serves, and that node relays
 * their audit entries from its data directory. With a config file naming the
 * bus and an empty data directory they still work on the cluster, and say
 * that the audit entry waits there. An unreachable NATS is
 * registry.unavailable with exit 2 and nothing written. `mmgw registry
 * export` without --data or --bus follows the config too, and says so.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { eventually } from '../../testing/index.ts';
import { nextImei, runMmgw, startGateway } from '../harness/gateway.ts';
import { freePort } from '../harness/nats.ts';
import { startNatsCluster } from '../harness/nats-cluster.ts';
import { ADMIN, ApiClient, WAIT } from './admin-api-helpers.ts';

function tempDir(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'mmgw-cli-cluster-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('the registry CLIs work on the cluster registry an admin node serves', async (t) => {
  const cluster = await startNatsCluster({ size: 3 });
  t.after(() => cluster.stop());
  const bus = cluster.urls.join(',');
  const credentialsKey = randomBytes(32).toString('base64');
  const admin = await startGateway({
    args: ['--role', 'admin', '--bus', bus, '--node-id', `cli-a1-${process.pid}`],
    env: {
      MMGW_ADMIN_NAME: ADMIN.name,
      MMGW_ADMIN_PASSWORD: ADMIN.password,
      MMGW_CREDENTIALS_KEY: credentialsKey,
    },
  });
  t.after(() => admin.stop());
  // The CLI as `podman exec <admin node> mmgw …` runs it: the node's environment and data directory.
  const env = { MMGW_BUS: bus, MMGW_CREDENTIALS_KEY: credentialsKey };
  const onNode = (args: string[], input?: string) =>
    runMmgw([...args, '--data', admin.dataDir], { env, ...(input === undefined ? {} : { input }) });

  const op = await onNode(['operator', 'add', 'acme', '--name', 'Acme', '--json']);
  assert.equal(op.code, 0, op.stdout + op.stderr);
  const imei = nextImei();
  const added = await onNode(['device', 'add', '--imei', imei, '--operator', 'acme', '--json']);
  assert.equal(added.code, 0, added.stdout + added.stderr);
  assert.match(JSON.parse(added.stdout).secret, /^[A-Za-z0-9_-]{43}$/);
  const user = await onNode(
    ['admin', 'user', 'add', '--name', 'ops', '--role', 'operator', '--password-stdin', '--json'],
    'ops password long enough\n',
  );
  assert.equal(user.code, 0, user.stdout + user.stderr);
  // On the admin node's data directory nothing is said about the audit: that node relays it.
  assert.equal(op.stderr + added.stderr + user.stderr, '');
  // The same records the API writes: a second add of the IMEI is a duplicate there.
  const again = await onNode(['device', 'add', '--imei', imei, '--operator', 'acme', '--json']);
  assert.equal(again.code, 2);
  assert.equal(JSON.parse(again.stdout).error.code, 'registry.duplicate');

  // The admin node serves them: the CLI's user logs in and reads the CLI's device and operator.
  const ops = await eventually(
    "the CLI's user logs in",
    () => ApiClient.as(admin.adminUrl, 'ops', 'ops password long enough').catch(() => undefined),
    WAIT,
  );
  const device = await eventually(
    "the CLI's device served",
    async () => {
      const r = await ops.call('GET', `/devices/${imei}`);
      return r.status === 200 && r;
    },
    WAIT,
  );
  assert.equal(device.json.operator, 'acme');
  const operators = await ops.call('GET', '/operators');
  assert.ok(
    operators.json.items.some((o: { id: string }) => o.id === 'acme'),
    operators.text,
  );
  // … and has their audit entries, as the CLI's user on this host.
  const root = await ApiClient.as(admin.adminUrl, ADMIN.name, ADMIN.password);
  const audit = await eventually(
    "the CLI's audit entries relayed by the admin node",
    async () => {
      const r = await root.call('GET', '/audit?limit=50');
      const mine = (r.json.items as Array<{ actor: string; action: string; target: string }>).filter((e) =>
        e.actor.startsWith('cli:'),
      );
      return mine.length >= 3 && mine;
    },
    WAIT,
  );
  assert.ok(
    audit.some((e) => e.target.includes(imei)),
    JSON.stringify(audit),
  );

  // A config file naming the bus, and a data directory no node uses: still the cluster's registry.
  const elsewhere = tempDir(t);
  const config = join(elsewhere, 'mmgw.json');
  writeFileSync(config, JSON.stringify({ bus, data: join(elsewhere, 'data') }));
  const shown = await runMmgw(['device', 'show', imei, '--config', config, '--json']);
  assert.equal(shown.code, 0, shown.stdout + shown.stderr);
  assert.equal(JSON.parse(shown.stdout).device.operator, 'acme');
  const disabled = await runMmgw(['device', 'disable', imei, '--config', config]);
  assert.equal(disabled.code, 0, disabled.stdout + disabled.stderr);
  assert.match(disabled.stderr, /1 audit entry waits in .*where no admin node runs/);
  await eventually(
    'the device disabled on the admin node',
    async () => (await ops.call('GET', `/devices/${imei}`)).json.status === 'disabled',
    WAIT,
  );
  // An import writes its rows into the cluster too (its job stays in the data directory).
  const rows = [nextImei(), nextImei()];
  const csv = join(elsewhere, 'devices.csv');
  writeFileSync(csv, `imei,operator\n${rows.map((i) => `${i},acme`).join('\n')}\n`);
  const imported = await onNode(['device', 'import', csv, '--json']);
  assert.equal(imported.code, 0, imported.stdout + imported.stderr);
  assert.equal(JSON.parse(imported.stdout).written, 2);
  // The admin node's copy follows the buckets by a watch: a moment after the write.
  for (const row of rows)
    await eventually(
      `imported ${row} served`,
      async () => (await ops.call('GET', `/devices/${row}`)).status === 200,
      WAIT,
    );
  const users = await runMmgw(['admin', 'user', 'list', '--config', config, '--json']);
  assert.deepEqual(
    JSON.parse(users.stdout)
      .items.map((u: { name: string }) => u.name)
      .sort(),
    ['ops', ADMIN.name].sort(),
  );

  // `mmgw registry export` with the bus in the environment reads the cluster, and says so.
  const exported = await runMmgw(['registry', 'export'], { env: { MMGW_BUS: bus, MMGW_DATA: elsewhere } });
  assert.equal(exported.code, 0, exported.stderr);
  assert.match(
    exported.stderr,
    /^reading the cluster registry in NATS JetStream KV \(nats:\/\/.*; 3 replicas\)/,
  );
  assert.ok(exported.stdout.includes(`"key":"${imei}"`), exported.stdout.slice(0, 500));
  // --data says lmdb, whatever the environment: the admin node's own lmdb registry has no device.
  const local = await runMmgw(['registry', 'export', '--data', admin.dataDir], { env: { MMGW_BUS: bus } });
  assert.equal(local.code, 0, local.stderr);
  assert.match(local.stderr, /^reading the lmdb registry in /);
  assert.ok(!local.stdout.includes(imei));
});

test('an unreachable NATS is registry.unavailable, exit 2, and nothing is written', async (t) => {
  const data = join(tempDir(t), 'data');
  const bus = `nats://127.0.0.1:${await freePort()}`;
  const env = { MMGW_BUS: bus };
  const add = await runMmgw(
    ['device', 'add', '--imei', nextImei(), '--operator', 'acme', '--data', data, '--json'],
    { env },
  );
  assert.equal(add.code, 2, add.stdout + add.stderr);
  const error = JSON.parse(add.stdout).error;
  assert.equal(error.code, 'registry.unavailable');
  assert.match(
    error.message,
    new RegExp(`cannot reach the cluster registry on NATS ${bus}: .+; nothing was changed`),
  );
  const user = await runMmgw(
    ['admin', 'user', 'add', '--name', 'x', '--role', 'viewer', '--password-stdin', '--data', data],
    { env, input: 'a long enough password\n' },
  );
  assert.equal(user.code, 2);
  assert.match(user.stderr, /^mmgw: cannot reach the cluster registry on NATS/);
  const op = await runMmgw(['operator', 'list', '--data', data], { env });
  assert.equal(op.code, 2);
  assert.equal(existsSync(data), false, existsSync(data) ? readdirSync(data).join(',') : '');
});

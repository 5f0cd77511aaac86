/**
 * Two admin nodes on one registry in JetStream KV: 3 nats-servers (R3
 * buckets) and 2 admin-role gateways with data directories of their own and
 * the same first admin user and credentials key. Stopped with the test.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { type Gateway, startGateway } from '../harness/gateway.ts';
import { startNatsCluster } from '../harness/nats-cluster.ts';
import { ADMIN } from './admin-api-helpers.ts';

export async function startAdminCluster(t: {
  after(fn: () => unknown): void;
}): Promise<{ bus: string; tag: string; a1: Gateway; a2: Gateway }> {
  const cluster = await startNatsCluster({ size: 3 });
  t.after(() => cluster.stop());
  const bus = cluster.urls.join(',');
  const tag = `${process.pid}`;
  const env = {
    MMGW_ADMIN_NAME: ADMIN.name,
    MMGW_ADMIN_PASSWORD: ADMIN.password,
    MMGW_CREDENTIALS_KEY: randomBytes(32).toString('base64'),
  };
  const admins = await Promise.all(
    ['a1', 'a2'].map((n) =>
      startGateway({ args: ['--role', 'admin', '--bus', bus, '--node-id', `${n}-${tag}`], env }),
    ),
  );
  t.after(() => Promise.all(admins.map((a) => a.stop())));
  const [a1, a2] = admins;
  assert.ok(a1 && a2);
  return { bus, tag, a1, a2 };
}

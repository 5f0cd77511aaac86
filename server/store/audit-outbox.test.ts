import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Registry } from './registry.ts';

const cli = { actor: 'cli:alice', role: 'cli', address: 'host1' };

async function open(t: { after(fn: () => void | Promise<void>): void }) {
  const dir = mkdtempSync(join(tmpdir(), 'mmgw-outbox-'));
  let now = 1_000_000;
  const registry = await Registry.open(dir, { now: () => now });
  t.after(async () => {
    await registry.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { registry, advance: (ms: number) => (now += ms) };
}

test('a change made with an actor leaves its audit entry in the same transaction, before and after', async (t) => {
  const { registry } = await open(t);
  const { device, secret } = await registry.addDevice(
    { imei: '490154203237518', operator: 'op', profile: 'gold' },
    cli,
  );
  await registry.setStatus(device.imei, 'disabled', cli);
  await registry.resetSecret(device.imei, cli);
  await registry.removeDevice(device.imei, cli);
  await registry.addAdminUser({ name: 'bob', role: 'viewer', password: 'bob-password-1' }, cli);
  await registry.setAdminRole('bob', 'operator', cli);
  await registry.setAdminPassword('bob', 'bob-password-2', cli);
  await registry.removeAdminUser('bob', cli);
  // Without an actor (the admin API writes its own entries), nothing.
  await registry.addDevice({ imei: '356938035643809', operator: 'op' });
  const entries = registry.auditOutbox.list();
  assert.deepEqual(
    entries.map((e) => [e.action, e.target, e.actor, e.role, e.address]),
    [
      ['device.create', 'device:490154203237518', 'cli:alice', 'cli', 'host1'],
      ['device.disable', 'device:490154203237518', 'cli:alice', 'cli', 'host1'],
      ['device.reset_secret', 'device:490154203237518', 'cli:alice', 'cli', 'host1'],
      ['device.remove', 'device:490154203237518', 'cli:alice', 'cli', 'host1'],
      ['user.create', 'user:bob', 'cli:alice', 'cli', 'host1'],
      ['user.role', 'user:bob', 'cli:alice', 'cli', 'host1'],
      ['user.password', 'user:bob', 'cli:alice', 'cli', 'host1'],
      ['user.remove', 'user:bob', 'cli:alice', 'cli', 'host1'],
    ],
  );
  const disable = entries[1] as { before: Record<string, unknown>; after: Record<string, unknown> };
  assert.equal(disable.before.status, 'enabled');
  assert.equal(disable.after.status, 'disabled');
  assert.equal(disable.after.serviceProfile, 'gold', 'the API names of fields');
  assert.ok(!JSON.stringify(entries).includes(secret), 'no secret in the audit log');
  assert.ok(!JSON.stringify(entries).includes('scrypt'), 'no password hash either');
});

test('a refused change leaves no entry', async (t) => {
  const { registry } = await open(t);
  await assert.rejects(registry.setStatus('490154203237518', 'disabled', cli));
  await assert.rejects(registry.removeAdminUser('nobody', cli));
  assert.deepEqual(registry.auditOutbox.list(), []);
});

test('claims last a lease: another relay skips claimed entries until it passes; removed entries are gone', async (t) => {
  const { registry, advance } = await open(t);
  for (const name of ['a1', 'a2', 'a3'])
    await registry.addAdminUser({ name, role: 'viewer', password: 'long-password-1' }, cli);
  const first = await registry.auditOutbox.claim(2, 30_000);
  assert.deepEqual(
    first.map((c) => c.entry.target),
    ['user:a1', 'user:a2'],
  );
  const second = await registry.auditOutbox.claim(10, 30_000);
  assert.deepEqual(
    second.map((c) => c.entry.target),
    ['user:a3'],
  );
  assert.deepEqual(await registry.auditOutbox.claim(10, 30_000), []);
  await registry.auditOutbox.remove(first.map((c) => c.key));
  advance(30_001);
  const retaken = await registry.auditOutbox.claim(10, 30_000);
  assert.deepEqual(
    retaken.map((c) => c.entry.target),
    ['user:a3'],
    'a claim whose relay died is taken again once its lease passes',
  );
});

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import pino from 'pino';
import { Registry } from '../server/store/registry.ts';
import { startAuditRelay } from './audit-relay.ts';
import { RecordsStore } from './records-store.ts';

const cli = { actor: 'cli:alice', role: 'cli', address: 'host1' };

async function open(t: { after(fn: () => void | Promise<void>): void }) {
  const dataDir = mkdtempSync(join(tmpdir(), 'mmgw-relay-'));
  const registry = await Registry.open(dataDir);
  const records = await RecordsStore.open({ dataDir });
  const relay = startAuditRelay({ registry, records, logger: pino({ level: 'silent' }), intervalMs: 60_000 });
  t.after(async () => {
    await relay.close();
    await records.close();
    await registry.close();
    rmSync(dataDir, { recursive: true, force: true });
  });
  return { registry, records, relay };
}

test('entries the registry wrote reach the audit log once, and leave the outbox', async (t) => {
  const { registry, records, relay } = await open(t);
  await registry.addDevice({ imei: '490154203237518', operator: 'op' }, cli);
  await registry.setStatus('490154203237518', 'disabled', cli);
  assert.equal(await relay.drain(), 2);
  assert.deepEqual(registry.auditOutbox.list(), []);
  const items = records.queryAudit({ limit: 10 }).items;
  assert.deepEqual(
    items.map((e) => [e.action, e.target, e.actor, e.role, e.address]),
    [
      ['device.disable', 'device:490154203237518', 'cli:alice', 'cli', 'host1'],
      ['device.create', 'device:490154203237518', 'cli:alice', 'cli', 'host1'],
    ],
  );
  assert.equal(await relay.drain(), 0);
  assert.equal(records.queryAudit({ limit: 10 }).items.length, 2);
});

test('an entry copied by a relay that died before removing it is not copied twice', async (t) => {
  const { registry, records, relay } = await open(t);
  await registry.removeAdminUser('nobody', cli).catch(() => undefined);
  await registry.addAdminUser({ name: 'bob', role: 'viewer', password: 'bob-password-1' }, cli);
  const [waiting] = registry.auditOutbox.list();
  assert.ok(waiting);
  // The dead relay's copy.
  await records.addAudit(waiting);
  await relay.drain();
  assert.equal(records.queryAudit({ limit: 10, action: 'user.create' }).items.length, 1);
  assert.deepEqual(registry.auditOutbox.list(), []);
});

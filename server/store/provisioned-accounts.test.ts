import assert from 'node:assert/strict';
import { test } from 'node:test';
import { recordingOutbox, tempLmdbEnv } from '../../testing/store/lmdb-env.ts';
import { GatewayError } from '../../device-protocol/errors.ts';
import {
  AccountStore,
  PROVISIONED_ACCOUNT_VERSION,
  type ProvisionedAccountRecord,
} from './provisioned-accounts.ts';
import { LmdbRegistryTable } from './registry-table.ts';

const IMEI = '356938035643809';
const cli = { actor: 'cli:alice', role: 'cli' };
const account = { label: 'mail', service: 'mail' as const, user: 'u', secret: 'sealed' };

function code(c: string) {
  return (err: unknown) => err instanceof GatewayError && err.code === c;
}

function accounts(t: Parameters<typeof tempLmdbEnv>[0]) {
  const db = tempLmdbEnv(t).openDB<ProvisionedAccountRecord, string[]>({ name: 'accounts' });
  const devices = new Set([IMEI]);
  const outbox = recordingOutbox();
  let now = 10;
  const store = new AccountStore({
    accounts: new LmdbRegistryTable(db as never, 'pair', (raw) => raw as ProvisionedAccountRecord),
    hasDevice: (imei) => devices.has(imei),
    outbox,
    now: () => now,
    assertOpen: () => {},
  });
  return { db, outbox, store, advance: () => (now += 5) };
}

test('an account is created, then replaced keeping its creation time, and listed by device', async (t) => {
  const { db, outbox, store, advance } = accounts(t);
  const first = await store.put(IMEI, account, cli);
  assert.equal(first.before, undefined);
  assert.equal(db.get([IMEI, 'mail'])?.v, PROVISIONED_ACCOUNT_VERSION);
  advance();
  const second = await store.put(IMEI, { ...account, user: 'v' }, cli);
  assert.deepEqual([second.after.createdAt, second.after.updatedAt], [10, 15]);
  assert.deepEqual(store.list(IMEI), [second.after]);
  assert.equal(store.list('490154203237518').length, 0);
  assert.deepEqual(
    outbox.entries.map((e) => e.action),
    ['device.account.create', 'device.account.update'],
  );
  // The audit log never sees the sealed secret.
  assert.ok(!JSON.stringify(outbox.entries).includes('sealed'));
});

test('no account for an unknown device; removing a missing one is refused', async (t) => {
  const { store } = accounts(t);
  await assert.rejects(store.put('490154203237518', account), code('registry.not_found'));
  await store.put(IMEI, account);
  assert.equal((await store.remove(IMEI, 'mail')).label, 'mail');
  assert.equal(store.get(IMEI, 'mail'), undefined);
  await assert.rejects(store.remove(IMEI, 'mail'), code('registry.not_found'));
});

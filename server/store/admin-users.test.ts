import assert from 'node:assert/strict';
import { test } from 'node:test';
import { recordingOutbox, tempLmdbEnv } from '../../testing/store/lmdb-env.ts';
import { GatewayError } from '../../device-protocol/errors.ts';
import { AdminUsers } from './admin-users.ts';
import { type AdminUserRecordV1, readAdminUserRecord } from './records.ts';
import { LmdbRegistryTable } from './registry-table.ts';

const cli = { actor: 'cli:alice', role: 'cli' };

function code(c: string) {
  return (err: unknown) => err instanceof GatewayError && err.code === c;
}

function users(t: Parameters<typeof tempLmdbEnv>[0]) {
  const admins = tempLmdbEnv(t).openDB<AdminUserRecordV1, string>({ name: 'admins' });
  const outbox = recordingOutbox();
  const table = new LmdbRegistryTable(admins, 'string', readAdminUserRecord);
  const store = new AdminUsers({ admins: table, outbox, now: () => 5, assertOpen: () => {} });
  return { admins, outbox, store };
}

test('a user is added with a hashed password, checked, listed, and audited without the hash', async (t) => {
  const { admins, outbox, store } = users(t);
  const bob = await store.add({ name: 'bob', role: 'viewer', password: 'bob-password-1' }, cli);
  assert.deepEqual(bob, { name: 'bob', role: 'viewer', createdAt: 5 });
  assert.match(admins.get('bob')?.passwordHash ?? '', /^scrypt\$/);
  assert.deepEqual(await store.verifyPassword('bob', 'bob-password-1'), bob);
  assert.equal(await store.verifyPassword('bob', 'wrong-password'), undefined);
  assert.equal(await store.verifyPassword('nobody', 'bob-password-1'), undefined);
  assert.deepEqual(store.list(), [bob]);
  assert.deepEqual(outbox.entries, [{ who: cli, action: 'user.create', target: 'user:bob', after: bob }]);
  await assert.rejects(
    store.add({ name: 'bob', role: 'viewer', password: 'bob-password-2' }),
    code('registry.duplicate'),
  );
});

test('bad names, roles and passwords are refused with the field at fault', async (t) => {
  const { store } = users(t);
  const field = (f: string) => (err: unknown) => err instanceof GatewayError && err.field === f;
  await assert.rejects(store.add({ name: 'a b', role: 'viewer', password: 'long-enough-1' }), field('name'));
  await assert.rejects(
    store.add({ name: 'a', role: 'root' as never, password: 'long-enough-1' }),
    field('role'),
  );
  await assert.rejects(store.add({ name: 'a', role: 'viewer', password: 'short' }), field('password'));
});

test('a password or role change moves the token epoch on; removal forgets the user', async (t) => {
  const { outbox, store } = users(t);
  await store.add({ name: 'eve', role: 'operator', password: 'eve-password-1' });
  assert.equal(store.getAuth('eve')?.tokenEpoch, 0);
  await store.setPassword('eve', 'eve-password-2', cli);
  assert.equal(store.getAuth('eve')?.tokenEpoch, 1);
  assert.ok(await store.verifyPassword('eve', 'eve-password-2'));
  const change = await store.setRole('eve', 'admin', cli);
  assert.deepEqual([change.before.role, change.after.role], ['operator', 'admin']);
  assert.equal(store.getAuth('eve')?.tokenEpoch, 2);
  await store.remove('eve', cli);
  assert.equal(store.get('eve'), undefined);
  assert.deepEqual(
    outbox.entries.map((e) => e.action),
    ['user.password', 'user.role', 'user.remove'],
  );
  await assert.rejects(store.setPassword('eve', 'eve-password-3'), code('registry.not_found'));
  await assert.rejects(store.setRole('eve', 'viewer'), code('registry.not_found'));
  await assert.rejects(store.remove('eve'), code('registry.not_found'));
});

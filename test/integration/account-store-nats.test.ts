/**
 * The account store's cases on the cluster backend: records in a JetStream KV
 * table (SharedAccountRecords) on a real nats-server, and what the cluster
 * backend is for: an account written through one node is read, secret and
 * all, through another (the takeover of a dead transport's devices).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { NatsKvSharedState } from '../../server/store/shared/nats-kv.ts';
import { modify } from '../../server/store/shared/table.ts';
import {
  type DeviceAccountsV1,
  readDeviceAccounts,
  SharedAccountRecords,
} from '../../server/transport/kit/account-store.ts';
import { SealedMailAccountStore } from '../../server/transport/mail/account-store.ts';
import { eventually } from '../../testing/index.ts';
import { freshTableName } from '../../testing/store/shared-state-conformance.ts';
import { type AccountPlace, accountStoreCases, cipher } from '../../testing/transport/account-store-cases.ts';
import { type NatsServerHandle, startNatsServer } from '../harness/nats.ts';

let server: NatsServerHandle;
let a: NatsKvSharedState;
let b: NatsKvSharedState;

before(async () => {
  server = await startNatsServer({ jetstream: true });
  a = await NatsKvSharedState.connect({ servers: server.url, replicas: 1, name: 'accounts-a' });
  b = await NatsKvSharedState.connect({ servers: server.url, replicas: 1, name: 'accounts-b' });
});

after(async () => {
  await a?.close();
  await b?.close();
  await server?.stop();
});

const bad: string[] = [];
const openTable = (state: NatsKvSharedState, name: string) =>
  state.table<DeviceAccountsV1>(name, { read: readDeviceAccounts, onBadRecord: (key) => bad.push(key) });

async function kvPlace(): Promise<AccountPlace> {
  const table = await openTable(a, freshTableName());
  return {
    records: () => new SharedAccountRecords(table),
    async forge(deviceId, record) {
      await modify(table, deviceId, (current) => ({
        v: 1 as const,
        accounts: [...(current?.value.accounts ?? []).filter((r) => r.id !== record.id), record],
      }));
    },
    async close() {},
  };
}

describe('SealedAccountStore on JetStream KV', () => {
  for (const c of accountStoreCases) {
    test(c.name, async () => c.run(await kvPlace()));
  }
});

test('an account written through one node opens on another; a removal is seen there too', async () => {
  const name = freshTableName();
  const onA = new SealedMailAccountStore({
    records: new SharedAccountRecords(await openTable(a, name)),
    cipher,
  });
  const onB = new SealedMailAccountStore({
    records: new SharedAccountRecords(await openTable(b, name)),
    cipher,
  });
  const server = { host: 'imap.example.org', port: 143, tls: 'none' as const, user: 'alice', password: 'pw' };
  const added = await onA.add('dev-1', { address: 'alice@example.org', imap: server, smtp: server }, 10);
  await eventually('B sees the account', () => onB.count('dev-1') === 1);
  assert.deepEqual(onB.get('dev-1', added.id), added);
  assert.deepEqual(onB.devices(), ['dev-1']);
  await onB.remove('dev-1', added.id);
  await eventually('A sees it gone', () => !onA.list('dev-1').some((x) => x.id === added.id));
});

test('a malformed record another node wrote is left out and reported, not thrown at a reader', async () => {
  const name = freshTableName();
  const raw = await a.table<unknown>(`${name}r`, { read: (x) => x });
  await raw.create('dev-bad', { v: 1, accounts: [{ id: 7 }] });
  await raw.create('dev-ok', { v: 1, accounts: [] });
  const store = new SealedMailAccountStore({
    records: new SharedAccountRecords(await openTable(b, `${name}r`)),
    cipher,
  });
  assert.deepEqual(store.list('dev-bad'), []);
  assert.ok(bad.includes('dev-bad'));
});

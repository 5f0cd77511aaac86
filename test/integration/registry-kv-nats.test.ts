/**
 * The registry's conformance suite (testing/store/registry-conformance.ts)
 * with its tables on JetStream KV: a real 3-server NATS cluster (R3 buckets,
 * two registries on connections to different servers, as two admin nodes)
 * and one server (R1). Then records written by hand in the first clustered
 * release's shapes are read from KV, and what `mmgw registry import --bus`
 * writes is what a clustered registry serves (and the other way round).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Registry } from '../../server/store/registry.ts';
import { exportShared, importShared, parseExport } from '../../server/store/registry-transfer.ts';
import { NatsKvSharedState } from '../../server/store/shared/nats-kv.ts';
import type { SharedState } from '../../server/store/shared/table.ts';
import {
  assertReadsFixture,
  prefixedState,
  type RegistryBackend,
  registryCases,
  writeSharedFixture,
} from '../../testing/store/registry-conformance.ts';
import { clusteredCasProblem, type NatsServerHandle, startNatsServer } from '../harness/nats.ts';
import { type NatsCluster, startNatsCluster } from '../harness/nats-cluster.ts';

let cluster: NatsCluster;
let single: NatsServerHandle;
const closers: Array<() => Promise<void>> = [];
let stores = 0;

before(async () => {
  [cluster, single] = await Promise.all([
    startNatsCluster({ size: 3 }),
    startNatsServer({ jetstream: true }),
  ]);
});

after(async () => {
  for (const close of closers.reverse()) await close().catch(() => {});
  await cluster?.stop();
  await single?.stop();
});

async function connect(servers: string[], replicas: number, name: string): Promise<NatsKvSharedState> {
  const state = await NatsKvSharedState.connect({ servers, replicas, name });
  closers.push(() => state.close());
  return state;
}

async function openOn(state: SharedState, now?: () => number): Promise<Registry> {
  const dir = mkdtempSync(join(tmpdir(), 'mmgw-registry-kv-'));
  closers.push(async () => rmSync(dir, { recursive: true, force: true }));
  const registry = await Registry.open(dir, {
    shared: state,
    ...(now ? { now } : {}),
  });
  closers.push(() => registry.close());
  return registry;
}

/** Each open is a fresh store: its own bucket names on the servers. */
function kvBackend(name: string, a: () => NatsKvSharedState, b: () => NatsKvSharedState): RegistryBackend {
  return {
    name,
    async open(options) {
      const prefix = `t${process.pid % 1000}x${++stores}_`;
      return {
        a: await openOn(prefixedState(a(), prefix), options?.now),
        b: await openOn(prefixedState(b(), prefix), options?.now),
      };
    },
  };
}

describe('registry conformance: JetStream KV (3 servers, R3)', () => {
  let a: NatsKvSharedState;
  let b: NatsKvSharedState;
  before(async () => {
    a = await connect([cluster.urls[0]!], 3, 'reg-a');
    b = await connect([cluster.urls[1]!, cluster.urls[2]!], 3, 'reg-b');
  });
  const broken = clusteredCasProblem();
  const backend = kvBackend(
    'kv R3',
    () => a,
    () => b,
  );
  for (const c of registryCases) {
    const skip = c.racesOneKey ? broken : undefined;
    test(c.name, skip ? { skip } : {}, () => c.run(backend));
  }
});

describe('registry conformance: JetStream KV (one server, R1)', () => {
  let a: NatsKvSharedState;
  let b: NatsKvSharedState;
  before(async () => {
    a = await connect([single.url], 1, 'reg-r1-a');
    b = await connect([single.url], 1, 'reg-r1-b');
  });
  const backend = kvBackend(
    'kv R1',
    () => a,
    () => b,
  );
  for (const c of registryCases) test(c.name, () => c.run(backend));
});

test('records written in KV by hand in the first clustered release shapes (and older) are read', async () => {
  // Written through a connection of its own: a SharedState hands out one copy per table name, read
  // by the reader it was first opened with (here: none), so the registry must open on another one.
  const prefix = `f${process.pid % 1000}_`;
  await writeSharedFixture(prefixedState(await connect(cluster.urls, 3, 'reg-fixture-w'), prefix));
  const state = prefixedState(await connect(cluster.urls, 3, 'reg-fixture-r'), prefix);
  await assertReadsFixture(await openOn(state));
});

test('what `mmgw registry import --bus` writes a clustered registry serves, and its writes export', async () => {
  const state = prefixedState(await connect(cluster.urls, 3, 'reg-transfer'), `x${process.pid % 1000}_`);
  const fixture = readFileSync(
    new URL('../../testing/store/fixtures/registry-export-v0.jsonl', import.meta.url),
    'utf8',
  );
  const records = parseExport(fixture);
  await importShared(state, records);
  const registry = await openOn(state);
  for (const r of records) {
    if (r.table === 'devices') assert.equal(registry.getDevice(r.key)?.operator, r.value.operator);
  }
  assert.equal(registry.getRef('operators', 'acme')?.data.name, 'ACME Mobile');
  const { secret } = await registry.addDevice({ imei: '353879234252633', operator: 'acme' });
  assert.equal(registry.authenticate('353879234252633', secret).operator, 'acme');
  const exported: string[] = [];
  for await (const r of exportShared(state)) exported.push(`${r.table} ${r.key}`);
  assert.ok(exported.includes('devices 353879234252633'), exported.join(', '));
  assert.equal(exported.length, records.length + 1);
});

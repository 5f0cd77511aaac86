/**
 * `mmgw registry export|import` between lmdb and a real 3-server NATS cluster:
 * lmdb → cluster → lmdb gives the same records; a registry an older release
 * wrote (fixture) imports into the cluster and its devices are in the edges'
 * device_auth table; a retried import into the cluster is harmless.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { NatsKvSharedState } from '../../server/store/shared/nats-kv.ts';
import { openDeviceAuthTable } from '../../server/store/device-auth.ts';
import { provisionDevice, runMmgw } from '../harness/gateway.ts';
import { startNatsCluster } from '../harness/nats-cluster.ts';

const fixture = fileURLToPath(
  new URL('../../testing/store/fixtures/registry-export-v0.jsonl', import.meta.url),
);

/** The records of an export (the header carries the time of the export), keys in one order (JSON's mean nothing). */
function records(text: string): string[] {
  const canonical = (v: unknown): unknown =>
    Array.isArray(v)
      ? v.map(canonical)
      : v !== null && typeof v === 'object'
        ? Object.fromEntries(
            Object.entries(v)
              .sort(([a], [b]) => (a < b ? -1 : 1))
              .map(([k, x]) => [k, canonical(x)]),
          )
        : v;
  return text
    .trim()
    .split('\n')
    .slice(1)
    .map((line) => JSON.stringify(canonical(JSON.parse(line))))
    .sort();
}

test('a registry moves lmdb → NATS cluster → lmdb unchanged, and older records import', async (t) => {
  const cluster = await startNatsCluster({ size: 3 });
  t.after(() => cluster.stop());
  const bus = cluster.urls.join(',');
  const dir = mkdtempSync(join(tmpdir(), 'mmgw-transfer-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const source = join(dir, 'source');
  await provisionDevice(source);
  await provisionDevice(source, undefined, { profile: 'basic' });

  const exported = await runMmgw(['registry', 'export', '--data', source]);
  assert.equal(exported.code, 0, exported.stderr);
  // The two devices and their operator (`device add` wants it to exist).
  assert.equal(records(exported.stdout).length, 3);
  const file = join(dir, 'registry.jsonl');
  writeFileSync(file, exported.stdout);

  const intoCluster = await runMmgw(['registry', 'import', '--bus', bus, '--file', file, '--json']);
  assert.equal(intoCluster.code, 0, intoCluster.stderr);
  assert.deepEqual(JSON.parse(intoCluster.stdout), {
    written: 3,
    registry: { kind: 'cluster', servers: cluster.urls, replicas: 3 },
  });
  assert.match(intoCluster.stderr, /^writing into the cluster registry in NATS JetStream KV \(/);
  // Run again (as after a failure midway): the same records count as written, nothing changes.
  const again = await runMmgw(['registry', 'import', '--bus', bus, '--file', file, '--json']);
  assert.equal(again.code, 0, again.stderr);

  const fromCluster = await runMmgw(['registry', 'export', '--bus', bus]);
  assert.equal(fromCluster.code, 0, fromCluster.stderr);
  assert.deepEqual(records(fromCluster.stdout), records(exported.stdout));

  const target = join(dir, 'target');
  const back = join(dir, 'back.jsonl');
  writeFileSync(back, fromCluster.stdout);
  const intoLmdb = await runMmgw(['registry', 'import', '--data', target, '--file', back]);
  assert.equal(intoLmdb.code, 0, intoLmdb.stderr);
  assert.match(
    intoLmdb.stdout,
    new RegExp(`^imported 3 records into the lmdb registry in ${join(target, 'registry')}\n`),
  );
  const final = await runMmgw(['registry', 'export', '--data', target]);
  assert.deepEqual(records(final.stdout), records(exported.stdout));

  // Into lmdb a second time: refused as a whole, with the typed error and exit code 2.
  const twice = await runMmgw(['registry', 'import', '--data', target, '--file', back, '--json']);
  assert.equal(twice.code, 2);
  assert.equal(JSON.parse(twice.stdout).error.code, 'registry.duplicate');

  // What an older release wrote imports into the cluster, and its devices can authenticate at the edges.
  const old = await runMmgw(['registry', 'import', '--bus', bus, '--file', fixture]);
  assert.equal(old.code, 0, old.stderr);
  const state = await NatsKvSharedState.connect({ servers: cluster.urls, replicas: 3 });
  t.after(() => state.close());
  const auth = await openDeviceAuthTable(state);
  assert.equal(auth.get('356938035643809')?.value.status, 'enabled');
  assert.equal(auth.get('490154203237518')?.value.status, 'disabled');
});

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { GatewayError } from '../../device-protocol/errors.ts';
import type { DeviceDirectory } from '../bus/bus.ts';
import { eventually } from '../../testing/index.ts';
import {
  authenticateFrom,
  DeviceAuthPublisher,
  type DeviceAuthRecordV1,
  lookupFrom,
  openDeviceAuthTable,
  readDeviceAuthRecord,
  sharedDeviceDirectory,
  startDeviceAuthSharing,
} from './device-auth.ts';
import { Registry } from './registry.ts';
import { LmdbSharedState } from './shared/lmdb.ts';
import type { SharedTable } from './shared/table.ts';

const IMEI = '356938035643809';
const OTHER = '490154203237518';

async function fixture(t: { after(fn: () => Promise<void> | void): void }) {
  const dir = mkdtempSync(join(tmpdir(), 'mmgw-device-auth-'));
  const registry = await Registry.open(dir);
  const state = new LmdbSharedState(join(dir, 'shared'));
  const table = await openDeviceAuthTable(state);
  // What a test starts over the registry (a publisher's reconcile ticks) stops before it closes.
  const stops: Array<() => unknown> = [];
  t.after(async () => {
    for (const stop of stops.reverse()) await stop();
    await registry.close();
    await state.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { registry, table, stopFirst: (stop: () => unknown) => stops.push(stop) };
}

function code(c: string) {
  return (err: unknown) => err instanceof GatewayError && err.code === c;
}

test('the shared copy answers as the registry does: welcome, bad secret, disabled, unknown, removed', async (t) => {
  const { registry, table, stopFirst } = await fixture(t);
  const sharing = startDeviceAuthSharing({ registry, open: async () => table });
  stopFirst(() => sharing.stop());
  await eventually('the table opened', () => sharing.publisher());
  const { secret } = await registry.addDevice({ imei: IMEI, operator: 'op', profile: 'sp' });
  await sharing.publisher()!.flushed();
  assert.deepEqual(authenticateFrom(table, IMEI, secret), registry.authenticate(IMEI, secret));
  assert.deepEqual(lookupFrom(table, IMEI), registry.lookup(IMEI));
  assert.throws(() => authenticateFrom(table, IMEI, 'wrong'), code('auth.bad_secret'));
  assert.throws(() => authenticateFrom(table, IMEI, 'x'.repeat(10_000)), code('auth.bad_secret'));
  assert.throws(() => authenticateFrom(table, OTHER, secret), code('auth.unknown_device'));
  // Untrusted input from the handset: any type, any length.
  assert.throws(() => lookupFrom(table, 42 as unknown as string), code('auth.unknown_device'));
  assert.throws(() => lookupFrom(table, 'x'.repeat(100)), code('auth.unknown_device'));

  const { secret: second } = await registry.resetSecret(IMEI);
  await sharing.publisher()!.flushed();
  assert.throws(() => authenticateFrom(table, IMEI, secret), code('auth.bad_secret'));
  assert.equal(authenticateFrom(table, IMEI, second).keyEpoch, registry.lookup(IMEI).keyEpoch);

  await registry.setStatus(IMEI, 'disabled');
  await sharing.publisher()!.flushed();
  assert.throws(() => authenticateFrom(table, IMEI, second), code('auth.disabled'));
  assert.throws(() => lookupFrom(table, IMEI), code('auth.disabled'));

  await registry.removeDevice(IMEI);
  await sharing.publisher()!.flushed();
  assert.equal(table.get(IMEI), undefined);
});

test('imports are published; changes made without the publisher (another process) are reconciled', async (t) => {
  const { registry, table, stopFirst } = await fixture(t);
  await registry.importDevices(
    [
      { imei: IMEI, operator: 'op' },
      { imei: OTHER, operator: 'op' },
    ],
    { mode: 'all-or-nothing' },
  );
  // Opened after the import: nothing was told, the reconciliation finds both.
  const sharing = startDeviceAuthSharing({ registry, open: async () => table, reconcileMs: 10 });
  stopFirst(() => sharing.stop());
  await eventually('both devices published', () => table.size() === 2);
  // A record changed behind the publisher's back (as the CLI in another process would) is put right.
  const entry = table.get(IMEI)!;
  await table.update(IMEI, { ...entry.value, status: 'disabled' }, entry.revision);
  await eventually(
    'the periodic reconciliation restored it',
    () => table.get(IMEI)?.value.status === 'enabled',
  );
});

test('a failed publish is retried, not dropped', async (t) => {
  const { registry, table, stopFirst } = await fixture(t);
  let failures = 2;
  // A table whose first writes fail as an unreachable NATS would.
  const flaky: SharedTable<DeviceAuthRecordV1> = Object.create(table);
  flaky.create = async (key, value) => {
    if (failures-- > 0) throw new GatewayError('registry.unavailable');
    return table.create(key, value);
  };
  const publisher = new DeviceAuthPublisher(registry, flaky);
  stopFirst(() => publisher.stop());
  await registry.addDevice({ imei: IMEI, operator: 'op' });
  publisher.changed([IMEI]);
  await eventually('published after the retries', () => table.get(IMEI));
  assert.equal(failures, -1);
});

test("the shared copy carries the heartbeat of the device's service profile, as the registry's answer does", async (t) => {
  const { registry, table, stopFirst } = await fixture(t);
  await registry.putRef(
    'service-profiles',
    'quiet',
    { policies: { heartbeatMs: 90_000 } },
    { mode: 'create' },
  );
  const sharing = startDeviceAuthSharing({ registry, open: async () => table });
  stopFirst(() => sharing.stop());
  await eventually('the table opened', () => sharing.publisher());
  const { secret } = await registry.addDevice({ imei: IMEI, operator: 'op', profile: 'quiet' });
  await registry.addDevice({ imei: OTHER, operator: 'op' });
  await sharing.publisher()!.flushed();
  assert.equal(authenticateFrom(table, IMEI, secret).heartbeatMs, 90_000);
  assert.deepEqual(lookupFrom(table, IMEI), registry.lookup(IMEI));
  assert.equal(lookupFrom(table, OTHER).heartbeatMs, undefined);
  assert.throws(
    () => readDeviceAuthRecord({ ...table.get(IMEI)!.value, heartbeatMs: 'often' }),
    code('registry.bad_record'),
  );
});

test('records from another node are checked: a bad one is refused with a typed error', () => {
  const good = { v: 1, imei: IMEI, operator: 'op', status: 'enabled', secretHash: 'h', keyEpoch: 'e' };
  assert.deepEqual(readDeviceAuthRecord(good), good);
  // A newer release adds fields: the known ones are still read.
  assert.equal(readDeviceAuthRecord({ ...good, v: 2, extra: 1 }).imei, IMEI);
  for (const bad of [
    null,
    [],
    'x',
    { ...good, v: undefined },
    { ...good, status: 'maybe' },
    { ...good, imei: 1 },
  ]) {
    assert.throws(() => readDeviceAuthRecord(bad), code('registry.bad_record'), JSON.stringify(bad));
  }
});

test('the edge directory asks the fallback until the copy is open, and for devices the copy lacks', async (t) => {
  const { registry, table } = await fixture(t);
  const asked: string[] = [];
  const fallback: DeviceDirectory = {
    async authenticate(imei) {
      asked.push(`auth ${imei}`);
      throw new GatewayError('bus.no_responders');
    },
    async lookup(imei) {
      asked.push(`lookup ${imei}`);
      throw new GatewayError('bus.no_responders');
    },
  };
  let open!: (t: SharedTable<DeviceAuthRecordV1>) => void;
  const opened = new Promise<SharedTable<DeviceAuthRecordV1>>((resolve) => {
    open = resolve;
  });
  const directory = sharedDeviceDirectory({ open: () => opened, fallback });
  t.after(() => directory.close());
  const { secret } = await registry.addDevice({ imei: IMEI, operator: 'op' });
  const publisher = new DeviceAuthPublisher(registry, table);
  publisher.changed([IMEI]);
  await publisher.flushed();
  await assert.rejects(directory.authenticate(IMEI, secret), code('bus.no_responders'));
  open(table);
  await eventually('the copy is in use', () => directory.ready());
  assert.equal((await directory.authenticate(IMEI, secret)).imei, IMEI);
  assert.equal((await directory.lookup(IMEI)).imei, IMEI);
  await assert.rejects(directory.lookup(OTHER), code('bus.no_responders'));
  assert.deepEqual(asked, [`auth ${IMEI}`, `lookup ${OTHER}`]);
});

test("two admin nodes that disagree about a device: reconciling leaves the other node's record, a change wins", async (t) => {
  const { registry: first, table } = await fixture(t);
  const dir = mkdtempSync(join(tmpdir(), 'mmgw-device-auth-'));
  const second = await Registry.open(dir);
  t.after(async () => {
    await second.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const { secret: firstSecret } = await first.addDevice({ imei: IMEI, operator: 'op' });
  const { secret: secondSecret } = await second.addDevice({ imei: IMEI, operator: 'op' });
  const a = new DeviceAuthPublisher(first, table, { origin: 'admin-a' });
  const b = new DeviceAuthPublisher(second, table, { origin: 'admin-b' });
  t.after(() => {
    a.stop();
    b.stop();
  });
  a.changed([IMEI]);
  await a.flushed();
  for (let round = 0; round < 3; round++) {
    a.reconcile();
    b.reconcile();
    await Promise.all([a.flushed(), b.flushed()]);
  }
  assert.equal(table.get(IMEI)?.value.by, 'admin-a');
  assert.equal(authenticateFrom(table, IMEI, firstSecret).imei, IMEI);
  // An operator resets the secret through the second node: that change is published.
  const { secret: reset } = await second.resetSecret(IMEI);
  b.changed([IMEI]);
  await b.flushed();
  assert.equal(table.get(IMEI)?.value.by, 'admin-b');
  assert.equal(authenticateFrom(table, IMEI, reset).imei, IMEI);
  assert.throws(() => authenticateFrom(table, IMEI, secondSecret), code('auth.bad_secret'));
});

test("on a shared registry, one admin node publishes another's device changes (that one may be dead)", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mmgw-device-auth-'));
  const state = new LmdbSharedState(join(dir, 'shared'));
  const a = await Registry.open(join(dir, 'a'), { shared: state });
  const b = await Registry.open(join(dir, 'b'), { shared: state });
  const table = await openDeviceAuthTable(state);
  // Only b publishes: a stands for a node that died right after its registry write.
  const sharing = startDeviceAuthSharing({ registry: b, open: async () => table, origin: 'b' });
  t.after(async () => {
    sharing.stop();
    await a.close();
    await b.close();
    await state.close();
    rmSync(dir, { recursive: true, force: true });
  });
  await eventually('the table opened', () => sharing.publisher());
  const { secret } = await a.addDevice({ imei: IMEI, operator: 'op' });
  await sharing.publisher()!.flushed();
  assert.equal(authenticateFrom(table, IMEI, secret).imei, IMEI);
  await a.setStatus(IMEI, 'disabled');
  await sharing.publisher()!.flushed();
  assert.throws(() => authenticateFrom(table, IMEI, secret), code('auth.disabled'));
  await a.removeDevice(IMEI);
  await sharing.publisher()!.flushed();
  assert.equal(table.get(IMEI), undefined);
});

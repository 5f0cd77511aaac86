import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { GatewayError } from '../device-protocol/errors.ts';
import { Subjects } from '../server/bus/bus.ts';
import { InProcessBus } from '../server/bus/inproc.ts';
import { silentLogger } from '../server/ops/logger.ts';
import { openDeviceAuthTable } from '../server/store/device-auth.ts';
import { busDeviceDirectory } from '../server/store/directory.ts';
import { Registry } from '../server/store/registry.ts';
import { LmdbSharedState } from '../server/store/shared/lmdb.ts';
import { eventually } from '../testing/index.ts';
import { startAdminRole } from './index.ts';

const code = (c: string) => (err: unknown) => err instanceof GatewayError && err.code === c;

/** An admin role over a fresh registry on an in-process bus, all closed after the test. */
async function startAdmin(t: TestContext) {
  const dir = mkdtempSync(join(tmpdir(), 'mmgw-admin-'));
  const bus = new InProcessBus();
  const registry = await Registry.open(dir);
  const admin = await startAdminRole({ bus, registry, logger: silentLogger() });
  t.after(async () => {
    await admin.close();
    await bus.close();
    await registry.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { bus, registry, admin };
}

test('the edge authenticates devices through the admin role over the bus', async (t) => {
  const { bus, registry, admin } = await startAdmin(t);
  const directory = busDeviceDirectory(bus, { timeoutMs: 2000 });
  const imei = '356938035643809';
  const { secret } = await registry.addDevice({ imei, operator: 'demo', profile: 'basic' });

  // The key epoch travels with the answer (the edge puts it in the tokens it issues).
  assert.deepEqual(await directory.authenticate(imei, secret), {
    imei,
    operator: 'demo',
    profile: 'basic',
    status: 'enabled',
    keyEpoch: registry.lookup(imei).keyEpoch,
  });
  assert.ok(registry.lookup(imei).keyEpoch);
  assert.equal((await directory.lookup(imei)).operator, 'demo');
  await assert.rejects(directory.authenticate(imei, 'wrong'), code('auth.bad_secret'));
  await assert.rejects(directory.authenticate('490154203237518', secret), code('auth.unknown_device'));
  await registry.setStatus(imei, 'disabled');
  await assert.rejects(directory.authenticate(imei, secret), code('auth.disabled'));
  await assert.rejects(directory.lookup(imei), code('auth.disabled'));
  await assert.rejects(bus.request(Subjects.registryAuth, { op: 'drop', imei }), code('request.bad_input'));
  await assert.rejects(bus.request(Subjects.registryAuth, 'garbage'), code('request.bad_input'));

  // Last-seen is recorded for the successful authentication.
  await registry.flushLastSeen();
  assert.equal(typeof registry.getDevice(imei)?.lastSeenAt, 'number');

  // Without an admin role, the edge gets a bus error, not a hang.
  await admin.close();
  await assert.rejects(directory.lookup(imei), code('bus.no_responders'));
});

test('a malformed request from another role is request.bad_input naming its field', async (t) => {
  const { bus, registry } = await startAdmin(t);
  const imei = '356938035643809';
  const { secret } = await registry.addDevice({ imei, operator: 'demo' });
  const refusal = (subject: string, data: unknown) =>
    bus.request(subject, data).then(
      () => assert.fail(`${JSON.stringify(data)} was answered`),
      (err: GatewayError) => [err.code, err.field],
    );
  // Without a device id the op is not looked at.
  assert.deepEqual(await refusal(Subjects.registryAuth, { op: 'drop', imei: 5 }), [
    'request.bad_input',
    'imei',
  ]);
  assert.deepEqual(await refusal(Subjects.registryAuth, [imei]), ['request.bad_input', 'imei']);
  assert.deepEqual(await refusal(Subjects.registryAuth, { op: 'drop', imei }), ['request.bad_input', 'op']);
  assert.deepEqual(await refusal(Subjects.registryAuth, { op: 'authenticate', imei }), [
    'request.bad_input',
    'op',
  ]);
  assert.equal(
    ((await bus.request(Subjects.registryAuth, { op: 'authenticate', imei, secret })) as { imei: string })
      .imei,
    imei,
  );
  for (const data of [{}, { imei: '' }, { imei: 'x'.repeat(33) }, null])
    assert.deepEqual(await refusal(Subjects.deviceProfile, data), ['request.bad_input', 'imei']);
  assert.deepEqual(await bus.request(Subjects.deviceProfile, { imei }), {
    operator: 'demo',
    presets: [],
    policies: {},
    accounts: [],
  });
});

test('cluster mode: devices another admin added are answered from device_auth; sessions mark last seen', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mmgw-admin-'));
  const bus = new InProcessBus();
  const registry = await Registry.open(join(dir, 'mine'));
  const other = await Registry.open(join(dir, 'other'));
  const state = new LmdbSharedState(join(dir, 'shared'));
  const table = await openDeviceAuthTable(state);
  const admin = await startAdminRole({
    bus,
    registry,
    logger: silentLogger(),
    sharedDeviceAuth: () => table,
  });
  t.after(async () => {
    await admin.close();
    await bus.close();
    await registry.close();
    await other.close();
    await state.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const directory = busDeviceDirectory(bus, { timeoutMs: 2000 });
  // Added through the other admin node, which published it.
  const theirs = '490154203237518';
  const { secret } = await other.addDevice({ imei: theirs, operator: 'demo' });
  await table.create(theirs, other.deviceAuth(theirs)!);
  assert.equal((await directory.authenticate(theirs, secret)).imei, theirs);
  await assert.rejects(directory.authenticate(theirs, 'wrong'), code('auth.bad_secret'));
  await assert.rejects(directory.lookup('356938035643809'), code('auth.unknown_device'));

  const mine = '356938035643809';
  await registry.addDevice({ imei: mine, operator: 'demo' });
  // Untrusted payloads are ignored; a real session marks the device seen.
  bus.publish(Subjects.sessionUp, { deviceId: 42 });
  bus.publish(Subjects.sessionUp, { deviceId: 'x'.repeat(100) });
  bus.publish(Subjects.sessionUp, { deviceId: mine, sessionId: 's1' });
  await eventually('last seen recorded', async () => {
    await registry.flushLastSeen();
    return typeof registry.getDevice(mine)?.lastSeenAt === 'number';
  });
});

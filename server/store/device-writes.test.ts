import assert from 'node:assert/strict';
import { test } from 'node:test';
import { recordingOutbox, tempLmdbEnv } from '../../testing/store/lmdb-env.ts';
import { GatewayError } from '../../device-protocol/errors.ts';
import { DeviceWrites } from './device-writes.ts';
import type { ProvisionedAccountRecord } from './provisioned-accounts.ts';
import { type DeviceRecordV1, readDeviceRecord } from './records.ts';
import { LmdbRegistryTable, lmdbDeviceIndexes } from './registry-table.ts';
import { verifyDeviceSecret } from './secrets.ts';

const IMEI = '356938035643809';
const IMSI = '310150123456789';
const cli = { actor: 'cli:alice', role: 'cli' };

function code(c: string) {
  return (err: unknown) => err instanceof GatewayError && err.code === c;
}

function setup(t: Parameters<typeof tempLmdbEnv>[0]) {
  const env = tempLmdbEnv(t);
  const devices = env.openDB<DeviceRecordV1, string>({ name: 'devices' });
  const imsis = env.openDB<boolean, string>({ name: 'imsi' });
  const accounts = env.openDB<ProvisionedAccountRecord, string[]>({ name: 'accounts' });
  const outbox = recordingOutbox();
  const changed: string[][] = [];
  const forgotten: string[] = [];
  const writes = new DeviceWrites({
    devices: new LmdbRegistryTable(devices, 'string', readDeviceRecord),
    indexes: lmdbDeviceIndexes(imsis, accounts),
    outbox,
    now: () => 7,
    assertOpen: () => {},
    changed: (imeis) => changed.push(imeis),
    forgetLastSeen: (imei) => forgotten.push(imei),
  });
  return { devices, imsis, accounts, outbox, changed, forgotten, writes };
}

test('an added device keeps its secret hash and IMSI index entry, and is announced and audited', async (t) => {
  const { devices, imsis, outbox, changed, writes } = setup(t);
  const { device, secret } = await writes.add({ imei: IMEI, imsi: IMSI, operator: 'op' }, cli);
  assert.deepEqual([device.imei, device.status, device.createdAt], [IMEI, 'enabled', 7]);
  assert.ok(verifyDeviceSecret(secret, devices.get(IMEI)?.secretHash ?? ''));
  assert.equal(imsis.get(`${IMSI}:${IMEI}`), true);
  assert.deepEqual(changed, [[IMEI]]);
  assert.deepEqual(
    outbox.entries.map((e) => e.action),
    ['device.create'],
  );
  await assert.rejects(writes.add({ imei: IMEI, operator: 'op' }), code('registry.duplicate'));
  await assert.rejects(writes.add({ imei: '1', operator: 'op' }), code('registry.invalid_imei'));
  assert.equal(changed.length, 1);
});

test('a patch sets, keeps and clears fields, moving the IMSI index entry', async (t) => {
  const { imsis, writes } = setup(t);
  await writes.add({ imei: IMEI, imsi: IMSI, operator: 'op', model: 'm1' });
  const moved = await writes.patch(IMEI, { imsi: '310150000000001', model: null, status: 'disabled' });
  assert.deepEqual(
    [moved.imsi, moved.model, moved.operator, moved.status],
    ['310150000000001', undefined, 'op', 'disabled'],
  );
  assert.equal(imsis.get(`${IMSI}:${IMEI}`), undefined);
  assert.equal(imsis.get(`310150000000001:${IMEI}`), true);
  await assert.rejects(writes.patch(IMEI, { operator: 'bad op' }), code('registry.invalid_field'));
  await assert.rejects(writes.patch('490154203237518', {}), code('registry.not_found'));
});

test('a new secret replaces the old; status is checked; removal takes the accounts along', async (t) => {
  const { devices, accounts, outbox, forgotten, writes } = setup(t);
  const { secret } = await writes.add({ imei: IMEI, operator: 'op' });
  const reset = await writes.resetSecret(IMEI, cli);
  assert.ok(!verifyDeviceSecret(secret, devices.get(IMEI)?.secretHash ?? ''));
  assert.ok(verifyDeviceSecret(reset.secret, devices.get(IMEI)?.secretHash ?? ''));
  // A secret reset is audited without the records (they hold the hash).
  assert.deepEqual(outbox.entries.at(-1), {
    who: cli,
    action: 'device.reset_secret',
    target: `device:${IMEI}`,
  });
  await assert.rejects(writes.setStatus(IMEI, 'gone' as never), code('registry.invalid_field'));
  await accounts.put([IMEI, 'mail'], { v: 1 } as never);
  await writes.remove(IMEI, cli);
  assert.equal(devices.get(IMEI), undefined);
  assert.equal(accounts.get([IMEI, 'mail']), undefined);
  assert.deepEqual(forgotten, [IMEI]);
  await assert.rejects(writes.remove(IMEI), code('registry.not_found'));
});

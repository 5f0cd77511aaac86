/**
 * The registry's conformance suite, written once and run on every backend of
 * its tables: lmdb (the single-node default) and the shared state, on lmdb
 * beside the code (server/store/registry.test.ts) and on JetStream KV
 * (test/integration/registry-kv-nats.test.ts). Each case gets an opener of
 * two registries on one store — two admin nodes' views; on the plain lmdb
 * backend both are one registry — and throws on failure.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { GatewayError } from '../../device-protocol/errors.ts';
import { imeiWithCheckDigit } from '../../server/store/imei.ts';
import type { Registry } from '../../server/store/registry.ts';
import type { SharedState } from '../../server/store/shared/table.ts';
import { eventually } from '../eventually.ts';

export interface RegistryPair {
  a: Registry;
  b: Registry;
}

export interface RegistryBackend {
  name: string;
  /** A fresh store, and two registries on it; closed by the caller's test context. */
  open(options?: { now?: () => number }): Promise<RegistryPair>;
}

export interface RegistryCase {
  name: string;
  /** Two nodes' writes race on one key: skipped where compare-and-set is not exact. */
  racesOneKey?: true;
  run(backend: RegistryBackend): Promise<void>;
}

const IMEI = '356938035643809';
/** Reads on the other node follow its watch: on lmdb at once, on KV within moments. */
const FOLLOW = { timeoutMs: 20_000, intervalMs: 20 };

function code(c: string) {
  return (err: unknown) => err instanceof GatewayError && err.code === c;
}

/** A table name prefix per opened store, so that stores on one NATS cluster do not meet. */
export function prefixedState(inner: SharedState, prefix: string): SharedState {
  return {
    kind: inner.kind,
    table: (name, options) => inner.table(`${prefix}${name}`, options),
    close: () => inner.close(),
  };
}

export const FIXTURE_DEVICE_SECRET = 'fixture-device-secret-0123456789abcdefghijk';

/** Records in the shapes the first clustered release writes (and older ones): table → key → stored value. */
export function sharedRegistryFixture(): Record<string, Record<string, unknown>> {
  const text = readFileSync(new URL('./fixtures/registry-shared-v1.json', import.meta.url), 'utf8');
  const { _comment: _c, ...tables } = JSON.parse(text) as Record<string, Record<string, unknown>>;
  return tables;
}

/** Writes the fixture's records as they are (no reader) into a shared state. */
export async function writeSharedFixture(state: SharedState): Promise<void> {
  for (const [table, records] of Object.entries(sharedRegistryFixture())) {
    const t = await state.table<unknown>(table, { read: (raw) => raw });
    for (const [key, value] of Object.entries(records)) await t.create(key, value);
  }
}

/** What a registry of this release makes of the fixture: every record read, upgraded where older. */
export async function assertReadsFixture(registry: Registry): Promise<void> {
  const current = registry.getDevice(IMEI);
  assert.deepEqual(current, {
    imei: IMEI,
    imsi: '262011234567890',
    operator: 'acme',
    profile: 'basic',
    operatorProfile: 'acme-net',
    model: 'phone-1',
    status: 'enabled',
    createdAt: 1_700_000_000_000,
    lastSeenAt: 1_700_000_500_000,
  });
  const info = registry.authenticate(IMEI, FIXTURE_DEVICE_SECRET);
  assert.equal(info.heartbeatMs, 45_000, 'the service profile record is read');
  assert.deepEqual(registry.getDevice('490154203237518'), {
    imei: '490154203237518',
    operator: 'acme',
    status: 'enabled',
    createdAt: 1_600_000_000_000,
  });
  assert.deepEqual(
    [...registry.iterateDevicesByImsi('26201')].map((d) => d.imei),
    [IMEI],
  );
  assert.equal(registry.getAdminAuth('ops')?.tokenEpoch, 3);
  assert.ok(await registry.verifyAdminPassword('ops', 'fixture admin password'));
  assert.deepEqual(registry.getAdminUser('root'), { name: 'root', role: 'admin', createdAt: 0 });
  assert.equal(registry.getRef('operators', 'acme')?.data.name, 'ACME Mobile');
  assert.equal(registry.getRef('operators', 'acme')?.revision, 2);
  assert.deepEqual(registry.listDeviceAccounts(IMEI), [
    {
      label: 'work',
      service: 'mail',
      user: 'alice',
      address: 'alice@example.test',
      secret: 'sealed:opaque',
      createdAt: 1_700_000_000_000,
      updatedAt: 1_700_000_002_000,
    },
  ]);
}

export const registryCases: RegistryCase[] = [
  {
    name: 'add, authenticate, and every refusal',
    async run(backend) {
      const { a: registry } = await backend.open({ now: () => 1_700_000_000_000 });
      const { device, secret } = await registry.addDevice({
        imei: IMEI,
        operator: 'demo',
        imsi: '310150123456789',
      });
      assert.equal(secret.length, 43, 'a 32-byte base64url secret');
      assert.deepEqual(device, {
        imei: IMEI,
        imsi: '310150123456789',
        operator: 'demo',
        status: 'enabled',
        createdAt: 1_700_000_000_000,
      });
      const info = registry.authenticate(IMEI, secret);
      assert.match(info.keyEpoch ?? '', /^[A-Za-z0-9_-]{12}$/);
      assert.deepEqual(info, { imei: IMEI, operator: 'demo', status: 'enabled', keyEpoch: info.keyEpoch });
      assert.throws(() => registry.authenticate(IMEI, `${secret}x`), code('auth.bad_secret'));
      assert.throws(() => registry.authenticate(IMEI, ''), code('auth.bad_secret'));
      assert.throws(() => registry.authenticate('490154203237518', secret), code('auth.unknown_device'));
      await registry.setStatus(IMEI, 'disabled');
      assert.throws(() => registry.authenticate(IMEI, secret), code('auth.disabled'));
      assert.throws(() => registry.lookup(IMEI), code('auth.disabled'));
      // A disabled device with a wrong secret learns nothing about its status.
      assert.throws(() => registry.authenticate(IMEI, 'wrong'), code('auth.bad_secret'));
      await registry.setStatus(IMEI, 'enabled');
      assert.equal(registry.lookup(IMEI).status, 'enabled');
      // The key epoch stays with the secret and changes with it (tokens of the old secret die).
      assert.equal(registry.lookup(IMEI).keyEpoch, info.keyEpoch);
      await registry.resetSecret(IMEI);
      assert.notEqual(registry.lookup(IMEI).keyEpoch, info.keyEpoch);
    },
  },
  {
    name: "the heartbeat of the device's service profile, else its operator profile's, goes with its info",
    async run(backend) {
      const { a: registry } = await backend.open();
      await registry.putRef('operator-profiles', 'slow-net', { heartbeatMs: 120_000 }, { mode: 'create' });
      await registry.putRef(
        'service-profiles',
        'fast',
        { policies: { heartbeatMs: 5_000 } },
        { mode: 'create' },
      );
      await registry.putRef('service-profiles', 'plain', { policies: {} }, { mode: 'create' });
      const heartbeat = async (imei: string, fields: { profile?: string; operatorProfile?: string }) => {
        const { secret } = await registry.addDevice({ imei, operator: 'demo', ...fields });
        const info = registry.authenticate(imei, secret);
        assert.equal(registry.lookup(imei).heartbeatMs, info.heartbeatMs);
        return info.heartbeatMs;
      };
      assert.equal(await heartbeat('356938035643809', {}), undefined);
      assert.equal(
        await heartbeat('490154203237518', { profile: 'fast', operatorProfile: 'slow-net' }),
        5_000,
      );
      assert.equal(
        await heartbeat('353879234252633', { profile: 'plain', operatorProfile: 'slow-net' }),
        120_000,
      );
    },
  },
  {
    name: 'duplicate, invalid IMEI, IMSI and fields are refused with their codes',
    async run(backend) {
      const { a: registry } = await backend.open();
      await registry.addDevice({ imei: IMEI, operator: 'demo' });
      await assert.rejects(registry.addDevice({ imei: IMEI, operator: 'demo' }), code('registry.duplicate'));
      await assert.rejects(
        registry.addDevice({ imei: '356938035643808', operator: 'demo' }),
        (err: unknown) =>
          code('registry.invalid_imei')(err) && /check digit should be 9/.test((err as Error).message),
      );
      await assert.rejects(
        registry.addDevice({ imei: '490154203237518', imsi: '123', operator: 'demo' }),
        code('registry.invalid_imsi'),
      );
      await assert.rejects(
        registry.addDevice({ imei: '490154203237518', operator: '' }),
        code('registry.invalid_field'),
      );
      await assert.rejects(
        registry.addDevice({ imei: '490154203237518', operator: 'bad name' }),
        code('registry.invalid_field'),
      );
      await assert.rejects(registry.setStatus('490154203237518', 'disabled'), code('registry.not_found'));
      await assert.rejects(registry.removeDevice('490154203237518'), code('registry.not_found'));
    },
  },
  {
    name: 'reset-secret invalidates the old secret; remove forgets the device',
    async run(backend) {
      const { a: registry } = await backend.open();
      const { secret } = await registry.addDevice({ imei: IMEI, operator: 'demo' });
      const reset = await registry.resetSecret(IMEI);
      assert.notEqual(reset.secret, secret);
      assert.throws(() => registry.authenticate(IMEI, secret), code('auth.bad_secret'));
      assert.equal(registry.authenticate(IMEI, reset.secret).imei, IMEI);
      await registry.removeDevice(IMEI);
      assert.equal(registry.getDevice(IMEI), undefined);
      assert.throws(() => registry.authenticate(IMEI, reset.secret), code('auth.unknown_device'));
    },
  },
  {
    name: 'list filters by operator, status and prefix, and pages with after',
    async run(backend) {
      const { a: registry } = await backend.open();
      const imeis: string[] = [];
      for (let i = 0; i < 30; i++) {
        const imei = imeiWithCheckDigit((i < 20 ? '35693803' : '49015420') + String(i).padStart(6, '0'));
        imeis.push(imei);
        await registry.addDevice({ imei, operator: i % 2 === 0 ? 'even' : 'odd' });
      }
      await registry.setStatus(imeis[3]!, 'disabled');
      assert.equal(registry.listDevices().length, 30);
      assert.equal(registry.countDevices(), 30);
      assert.equal(registry.deviceTotal(), 30);
      assert.equal(registry.listDevices({ operator: 'even' }).length, 15);
      assert.deepEqual(
        registry.listDevices({ status: 'disabled' }).map((d) => d.imei),
        [imeis[3]],
      );
      assert.equal(registry.listDevices({ prefix: '49015420' }).length, 10);
      assert.equal(registry.listDevices({ prefix: '35693803', operator: 'odd' }).length, 10);
      const page1 = registry.listDevices({ limit: 12 });
      const page2 = registry.listDevices({ limit: 12, after: page1.at(-1)!.imei });
      const page3 = registry.listDevices({ limit: 12, after: page2.at(-1)!.imei });
      assert.deepEqual(
        [...page1, ...page2, ...page3].map((d) => d.imei),
        [...imeis].sort(),
      );
      assert.equal(page3.length, 6);
    },
  },
  {
    name: 'last-seen times are written in batches, not per authentication',
    async run(backend) {
      let now = 1_000;
      const { a: registry } = await backend.open({ now: () => now });
      const { secret } = await registry.addDevice({ imei: IMEI, operator: 'demo' });
      now = 2_000;
      registry.authenticate(IMEI, secret);
      now = 3_000;
      registry.authenticate(IMEI, secret);
      assert.equal(registry.getDevice(IMEI)?.lastSeenAt, undefined, 'not written yet');
      await registry.flushLastSeen();
      assert.equal(registry.getDevice(IMEI)?.lastSeenAt, 3_000);
      // An older time never overwrites a newer one.
      registry.touchLastSeen(IMEI, 2_500);
      await registry.flushLastSeen();
      assert.equal(registry.getDevice(IMEI)?.lastSeenAt, 3_000);
    },
  },
  {
    name: 'admin passwords are hashed with scrypt and verified',
    async run(backend) {
      const { a: registry } = await backend.open();
      await registry.addAdminUser({ name: 'alice', role: 'operator', password: 'correct horse battery' });
      await assert.rejects(
        registry.addAdminUser({ name: 'alice', role: 'admin', password: 'another password' }),
        code('registry.duplicate'),
      );
      await assert.rejects(
        registry.addAdminUser({ name: 'bob', role: 'admin', password: 'short' }),
        code('registry.invalid_field'),
      );
      assert.equal((await registry.verifyAdminPassword('alice', 'correct horse battery'))?.role, 'operator');
      assert.equal(await registry.verifyAdminPassword('alice', 'wrong horse battery'), undefined);
      assert.equal(await registry.verifyAdminPassword('nobody', 'correct horse battery'), undefined);
      await registry.setAdminPassword('alice', 'a new long password');
      assert.equal(await registry.verifyAdminPassword('alice', 'correct horse battery'), undefined);
      assert.ok(await registry.verifyAdminPassword('alice', 'a new long password'));
      assert.deepEqual(
        registry.listAdminUsers().map((u) => u.name),
        ['alice'],
      );
      await registry.removeAdminUser('alice');
      assert.equal(registry.getAdminUser('alice'), undefined);
    },
  },
  {
    name: 'a device added on one node is read, edited and provisioned on the other; removed with its accounts',
    async run(backend) {
      const { a, b } = await backend.open();
      await a.putRef('operators', 'op', { name: 'Op' }, { mode: 'create' });
      await a.addDevice({ imei: IMEI, operator: 'op', imsi: '310150123456789' });
      await eventually('b reads the device', () => b.getDevice(IMEI), FOLLOW);
      assert.equal(b.getRef('operators', 'op')?.data.name, 'Op');
      await b.updateDevice(IMEI, { model: 'phone-1', imsi: '262011234567890' });
      await b.putDeviceAccount(IMEI, { label: 'work', service: 'mail', user: 'u', secret: 'sealed' });
      await eventually(
        'a sees the edit and the account',
        () => a.getDevice(IMEI)?.model === 'phone-1' && a.listDeviceAccounts(IMEI).length === 1,
        FOLLOW,
      );
      // The IMSI index follows the other node's change: the old IMSI finds nothing, the new one the device.
      assert.deepEqual([...a.iterateDevicesByImsi('3101')], []);
      assert.deepEqual(
        [...a.iterateDevicesByImsi('2620')].map((d) => d.imei),
        [IMEI],
      );
      await a.removeDevice(IMEI);
      await eventually(
        'b forgets the device and its accounts',
        () => b.getDevice(IMEI) === undefined && b.listDeviceAccounts(IMEI).length === 0,
        FOLLOW,
      );
      await assert.rejects(
        b.putDeviceAccount(IMEI, { label: 'work', service: 'mail', user: 'u', secret: 's' }),
        code('registry.not_found'),
      );
    },
  },
  {
    name: 'two nodes adding devices at once: each IMEI once, every device and index entry on both',
    racesOneKey: true,
    async run(backend) {
      const { a, b } = await backend.open();
      const imei = (i: number) => imeiWithCheckDigit(`35693803${String(i).padStart(6, '0')}`);
      // Both nodes add 0..39; each IMEI must end up added by exactly one of them.
      const results = await Promise.allSettled(
        Array.from({ length: 40 }, (_, i) => [
          a.addDevice({ imei: imei(i), operator: 'a', imsi: `31015${String(i).padStart(10, '0')}` }),
          b.addDevice({ imei: imei(i), operator: 'b', imsi: `31015${String(i).padStart(10, '0')}` }),
        ]).flat(),
      );
      const won = results.filter((r) => r.status === 'fulfilled').length;
      const lost = results.filter((r) => r.status === 'rejected' && code('registry.duplicate')(r.reason));
      assert.equal(won, 40, 'one node added each IMEI');
      assert.equal(lost.length, 40, 'the other was told registry.duplicate');
      for (const r of [a, b]) {
        await eventually('every device on both', () => r.countDevices() === 40, FOLLOW);
        assert.equal([...r.iterateDevicesByImsi('31015')].length, 40);
        assert.equal(r.listDevices({ operator: 'a' }).length + r.listDevices({ operator: 'b' }).length, 40);
      }
    },
  },
  {
    name: 'a write decided on a stale copy is refused or decided again, never lost',
    racesOneKey: true,
    async run(backend) {
      const { a, b } = await backend.open();
      await a.putRef('operators', 'op', { name: 'one' }, { mode: 'create' });
      await eventually('b reads the operator', () => b.getRef('operators', 'op'), FOLLOW);
      // Both replace revision 1: one wins, the other is told (undefined) and writes nothing.
      const answers = await Promise.all([
        a.putRef('operators', 'op', { name: 'from a' }, { mode: 'replace', revision: 1 }),
        b.putRef('operators', 'op', { name: 'from b' }, { mode: 'replace', revision: 1 }),
      ]);
      assert.equal(answers.filter((x) => x !== undefined).length, 1);
      // Status changes on both nodes at once are both applied, one after the other.
      await a.addDevice({ imei: IMEI, operator: 'op' });
      await eventually('b reads the device', () => b.getDevice(IMEI), FOLLOW);
      await Promise.all([
        a.updateDevice(IMEI, { model: 'm1' }),
        b.updateDevice(IMEI, { imsi: '262011234567890' }),
      ]);
      for (const r of [a, b]) {
        await eventually(
          'both changes kept',
          () => r.getDevice(IMEI)?.model === 'm1' && r.getDevice(IMEI)?.imsi === '262011234567890',
          FOLLOW,
        );
      }
    },
  },
];

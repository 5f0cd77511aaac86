import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { open } from 'lmdb';
import { GatewayError } from '../../device-protocol/errors.ts';
import { imeiWithCheckDigit } from './imei.ts';
import { Registry } from './registry.ts';

const run = promisify(execFile);
const child = fileURLToPath(new URL('../../testing/store/registry-child.ts', import.meta.url));

function tempDir(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'mmgw-registry-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function openRegistry(t: { after(fn: () => Promise<void>): void }, dir: string, now?: () => number) {
  const registry = await Registry.open(dir, now ? { now } : {});
  t.after(() => registry.close());
  return registry;
}

function code(c: string) {
  return (err: unknown) => err instanceof GatewayError && err.code === c;
}

const IMEI = '356938035643809';

describe('Registry devices', () => {
  test('add, authenticate, and every refusal', async (t) => {
    const dir = tempDir(t);
    const registry = await openRegistry(t, dir, () => 1_700_000_000_000);
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
    assert.throws(() => registry.authenticate(IMEI, secret + 'x'), code('auth.bad_secret'));
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
  });

  test("the heartbeat of the device's service profile, else its operator profile's, goes with its info", async (t) => {
    const registry = await openRegistry(t, tempDir(t), () => 1_700_000_000_000);
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
    assert.equal(await heartbeat('490154203237518', { profile: 'fast', operatorProfile: 'slow-net' }), 5_000);
    assert.equal(
      await heartbeat('353879234252633', { profile: 'plain', operatorProfile: 'slow-net' }),
      120_000,
    );
  });

  test('duplicate, invalid IMEI, IMSI and fields are refused with their codes', async (t) => {
    const registry = await openRegistry(t, tempDir(t));
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
  });

  test('reset-secret invalidates the old secret; remove forgets the device', async (t) => {
    const registry = await openRegistry(t, tempDir(t));
    const { secret } = await registry.addDevice({ imei: IMEI, operator: 'demo' });
    const reset = await registry.resetSecret(IMEI);
    assert.notEqual(reset.secret, secret);
    assert.throws(() => registry.authenticate(IMEI, secret), code('auth.bad_secret'));
    assert.equal(registry.authenticate(IMEI, reset.secret).imei, IMEI);
    await registry.removeDevice(IMEI);
    assert.equal(registry.getDevice(IMEI), undefined);
    assert.throws(() => registry.authenticate(IMEI, reset.secret), code('auth.unknown_device'));
  });

  test('the secret is never stored, only its hash', async (t) => {
    const dir = tempDir(t);
    const registry = await openRegistry(t, dir);
    const { secret } = await registry.addDevice({ imei: IMEI, operator: 'demo' });
    await registry.close();
    for (const name of readdirSync(join(dir, 'registry'))) {
      const bytes = readFileSync(join(dir, 'registry', name));
      assert.equal(bytes.includes(Buffer.from(secret)), false, `secret found in ${name}`);
    }
  });

  test('list filters by operator, status and prefix, and pages with after', async (t) => {
    const registry = await openRegistry(t, tempDir(t));
    const imeis: string[] = [];
    for (let i = 0; i < 30; i++) {
      const imei = imeiWithCheckDigit((i < 20 ? '35693803' : '49015420') + String(i).padStart(6, '0'));
      imeis.push(imei);
      await registry.addDevice({ imei, operator: i % 2 === 0 ? 'even' : 'odd' });
    }
    await registry.setStatus(imeis[3]!, 'disabled');
    assert.equal(registry.listDevices().length, 30);
    assert.equal(registry.countDevices(), 30);
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
  });

  test('last-seen times are written in batches, not per authentication', async (t) => {
    let now = 1_000;
    const registry = await openRegistry(t, tempDir(t), () => now);
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
  });
});

describe('Registry record versions', () => {
  test('reads v0 (unversioned), v1 and newer records', async (t) => {
    const dir = tempDir(t);
    const { hashDeviceSecret } = await import('./secrets.ts');
    // Write raw records as older (and newer) releases did, then open the registry over them.
    const env = open({ path: join(dir, 'registry'), maxDbs: 8 });
    const raw = env.openDB({ name: 'devices' });
    const v0 = imeiWithCheckDigit('35000000000000');
    const v1 = imeiWithCheckDigit('35000000000001');
    const v2 = imeiWithCheckDigit('35000000000002');
    await raw.put(v0, { imei: v0, operator: 'old', createdAt: 5, secretHash: hashDeviceSecret('s0') });
    await raw.put(v1, {
      v: 1,
      imei: v1,
      operator: 'one',
      status: 'disabled',
      createdAt: 6,
      secretHash: hashDeviceSecret('s1'),
    });
    await raw.put(v2, {
      v: 2,
      imei: v2,
      operator: 'future',
      status: 'enabled',
      createdAt: 7,
      secretHash: hashDeviceSecret('s2'),
      someNewField: { x: 1 },
    });
    const admins = env.openDB({ name: 'admins' });
    await admins.put('root', { name: 'root', role: 'admin', passwordHash: 'scrypt$1$1$1$AA$AA' });
    await env.close();

    const registry = await openRegistry(t, dir);
    assert.deepEqual(registry.getDevice(v0), { imei: v0, operator: 'old', status: 'enabled', createdAt: 5 });
    assert.equal(registry.authenticate(v0, 's0').operator, 'old');
    assert.equal(registry.getDevice(v1)?.status, 'disabled');
    assert.equal(registry.authenticate(v2, 's2').operator, 'future');
    assert.deepEqual(registry.getAdminUser('root'), { name: 'root', role: 'admin', createdAt: 0 });
    // A write upgrades the record to the current version.
    await registry.setStatus(v0, 'disabled');
    await registry.close();
    const env2 = open({ path: join(dir, 'registry'), maxDbs: 8 });
    assert.equal((env2.openDB({ name: 'devices' }).get(v0) as { v: number }).v, 1);
    await env2.close();
  });
});

describe('Registry import', () => {
  const rows = () => [
    { line: 2, imei: imeiWithCheckDigit('35000000000010'), operator: 'a' },
    { line: 3, imei: '356938035643808', operator: 'a' },
    { line: 4, imei: imeiWithCheckDigit('35000000000011'), operator: 'a', imsi: '12' },
    { line: 5, imei: imeiWithCheckDigit('35000000000010'), operator: 'a' },
    { line: 6, imei: IMEI, operator: 'a' },
    {
      line: 7,
      imei: imeiWithCheckDigit('35000000000012'),
      operator: 'a',
      profile: 'p1',
      status: 'disabled' as const,
    },
  ];

  test('all-or-nothing writes nothing when any row is bad, and lists every rejection with its line', async (t) => {
    const registry = await openRegistry(t, tempDir(t));
    await registry.addDevice({ imei: IMEI, operator: 'demo' });
    const result = await registry.importDevices(rows(), { mode: 'all-or-nothing' });
    assert.equal(result.written, 0);
    assert.equal(result.secrets.length, 0);
    assert.deepEqual(
      result.rejected.map((r) => [r.line, r.code]),
      [
        [3, 'registry.invalid_imei'],
        [4, 'registry.invalid_imsi'],
        [5, 'registry.duplicate'],
      ],
    );
    assert.equal(registry.countDevices(), 1);
    // The registry duplicate (line 6) is found once the in-file problems are fixed.
    const fixed = rows().filter((r) => [2, 6, 7].includes(r.line));
    const second = await registry.importDevices(fixed, { mode: 'all-or-nothing' });
    assert.deepEqual(
      second.rejected.map((r) => [r.line, r.code]),
      [[6, 'registry.duplicate']],
    );
    assert.equal(second.written, 0);
    assert.equal(registry.countDevices(), 1);
  });

  test('valid-only writes the valid rows and gives each a secret', async (t) => {
    const registry = await openRegistry(t, tempDir(t));
    await registry.addDevice({ imei: IMEI, operator: 'demo' });
    const result = await registry.importDevices(rows(), { mode: 'valid-only' });
    assert.equal(result.written, 2);
    assert.deepEqual(
      result.rejected.map((r) => [r.line, r.code]),
      [
        [3, 'registry.invalid_imei'],
        [4, 'registry.invalid_imsi'],
        [5, 'registry.duplicate'],
        [6, 'registry.duplicate'],
      ],
    );
    assert.equal(registry.countDevices(), 3);
    for (const { imei, secret } of result.secrets) {
      assert.throws(() => registry.authenticate(imei, secret + 'x'), code('auth.bad_secret'));
    }
    const enabled = result.secrets.find((s) => s.imei === imeiWithCheckDigit('35000000000010'))!;
    assert.equal(registry.authenticate(enabled.imei, enabled.secret).operator, 'a');
    const disabled = registry.getDevice(imeiWithCheckDigit('35000000000012'));
    assert.equal(disabled?.status, 'disabled');
    assert.equal(disabled?.profile, 'p1');
  });

  test('a provisioned secret from the file is kept', async (t) => {
    const registry = await openRegistry(t, tempDir(t));
    const secret = 'factory-secret-0123456789-abcdef';
    const imei = imeiWithCheckDigit('35000000000020');
    const result = await registry.importDevices([{ imei, operator: 'f', secret }], {
      mode: 'all-or-nothing',
    });
    assert.deepEqual(result.secrets, [{ imei, secret }]);
    assert.equal(registry.authenticate(imei, secret).imei, imei);
    const weak = await registry.importDevices([{ imei: IMEI, operator: 'f', secret: 'short' }], {
      mode: 'valid-only',
    });
    assert.equal(weak.rejected[0]?.field, 'secret');
  });
});

describe('Registry admin users', () => {
  test('passwords are hashed with scrypt and verified', async (t) => {
    const registry = await openRegistry(t, tempDir(t));
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
  });
});

describe('Registry across processes', () => {
  test('a second process writes while this one reads and writes', async (t) => {
    const dir = tempDir(t);
    const registry = await openRegistry(t, dir);
    const childRun = run(process.execPath, ['--import', 'tsx', child, 'add', dir, '49015420', '200']);
    const mine: string[] = [];
    for (let i = 0; i < 200; i++) {
      const imei = imeiWithCheckDigit('35693803' + String(i).padStart(6, '0'));
      mine.push(imei);
      await registry.addDevice({ imei, operator: 'parent' });
    }
    const { stdout } = await childRun;
    assert.match(stdout, /added 200/);
    assert.equal(registry.countDevices(), 400);
    assert.equal(registry.listDevices({ operator: 'child', limit: 1000 }).length, 200);
    // And the other way round: the child authenticates a device this process added.
    const [first] = mine;
    assert.ok(first);
    const { secret } = await registry.resetSecret(first);
    const auth = await run(process.execPath, ['--import', 'tsx', child, 'auth', dir, first, secret]);
    assert.equal(JSON.parse(auth.stdout).operator, 'parent');
    const bad = await run(process.execPath, ['--import', 'tsx', child, 'auth', dir, first, 'nope']);
    assert.equal(bad.stdout.trim(), 'auth.bad_secret');
  });
});

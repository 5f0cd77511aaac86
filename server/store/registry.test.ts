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
import {
  assertReadsFixture,
  type RegistryBackend,
  type RegistryPair,
  registryCases,
  sharedRegistryFixture,
  writeSharedFixture,
} from '../../testing/store/registry-conformance.ts';
import { Registry } from './registry.ts';
import { LmdbSharedState } from './shared/lmdb.ts';

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

type Context = { after(fn: () => Promise<void> | void): void };

/** A backend whose every open is closed with the test (the cases open and never close). */
interface Backend {
  name: string;
  open(t: Context, options?: { now?: () => number }): Promise<RegistryPair>;
}

function withContext(backend: Backend, t: Context): RegistryBackend {
  return { name: backend.name, open: (options) => backend.open(t, options) };
}

/** The single-node default: both "nodes" are one registry. */
function lmdbBackend(): Backend {
  return {
    name: 'lmdb',
    async open(t, options) {
      const a = await openRegistry(t, tempDir(t), options?.now);
      return { a, b: a };
    },
  };
}

/** The cluster's code path on the shared state's lmdb implementation: two registries, one store. */
function sharedOnLmdbBackend(): Backend {
  return {
    name: 'shared state (lmdb)',
    async open(t, options) {
      const store = tempDir(t);
      const state = new LmdbSharedState(join(store, 'shared'));
      const opened: Registry[] = [];
      t.after(async () => {
        for (const r of opened) await r.close();
        await state.close();
      });
      const open = async () => {
        const now = options?.now ? { now: options.now } : {};
        const r = await Registry.open(tempDir(t), { ...now, shared: state });
        opened.push(r);
        return r;
      };
      return { a: await open(), b: await open() };
    },
  };
}

function code(c: string) {
  return (err: unknown) => err instanceof GatewayError && err.code === c;
}

const IMEI = '356938035643809';

for (const backend of [lmdbBackend(), sharedOnLmdbBackend()]) {
  describe(`Registry conformance: ${backend.name}`, () => {
    for (const c of registryCases) test(c.name, (t) => c.run(withContext(backend, t)));
  });
}

describe('Registry devices', () => {
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

describe('Registry record versions on the shared state', () => {
  test('records written by hand in the shapes of the first clustered release (and older) are read', async (t) => {
    const state = new LmdbSharedState(join(tempDir(t), 'shared'));
    await writeSharedFixture(state);
    const registry = await Registry.open(tempDir(t), { shared: state });
    t.after(async () => {
      await registry.close();
      await state.close();
    });
    await assertReadsFixture(registry);
    // A write stores the current version; the fixture's v0 device comes back as v1.
    await registry.setStatus('490154203237518', 'disabled');
    const raw = await state.table<Record<string, unknown>>('registry_devices', { read: (r) => r as never });
    assert.equal(raw.get('490154203237518')?.value.v, 1);
  });

  test('the fixture has the fields and versions this release writes (else add a fixture, keep this one)', async (t) => {
    const state = new LmdbSharedState(join(tempDir(t), 'shared'));
    const registry = await Registry.open(tempDir(t), { shared: state, now: () => 1_700_000_000_000 });
    t.after(async () => {
      await registry.close();
      await state.close();
    });
    const imei = '356938035643809';
    await registry.putRef('operators', 'acme', { name: 'ACME Mobile' }, { mode: 'create' });
    await registry.addDevice({
      imei,
      imsi: '262011234567890',
      operator: 'acme',
      profile: 'basic',
      operatorProfile: 'acme-net',
      model: 'phone-1',
    });
    registry.touchLastSeen(imei, 1_700_000_500_000);
    await registry.flushLastSeen();
    await registry.addAdminUser({ name: 'ops', role: 'operator', password: 'fixture admin password' });
    await registry.setAdminPassword('ops', 'fixture admin password');
    await registry.putDeviceAccount(imei, {
      label: 'work',
      service: 'mail',
      user: 'alice',
      address: 'alice@example.test',
      secret: 'sealed:opaque',
    });
    const fixture = sharedRegistryFixture();
    const shape = (x: unknown) => {
      const r = x as Record<string, unknown>;
      return { v: r.v, fields: Object.keys(r).sort() };
    };
    for (const [table, key] of [
      ['registry_devices', imei],
      ['registry_admins', 'ops'],
      ['registry_refs', 'operators/acme'],
      ['registry_accounts', `${imei}/work`],
    ] as const) {
      const stored = (await state.table<unknown>(table, { read: (r) => r })).get(key)?.value;
      assert.deepEqual(shape(stored), shape(fixture[table]?.[key]), `${table} ${key}`);
    }
  });
});

describe('Registry moving into the shared state', () => {
  test("a node's lmdb records move into the cluster once; the cluster's own records win", async (t) => {
    const node = tempDir(t);
    const single = await Registry.open(node);
    await single.putRef('operators', 'op', { name: 'mine' }, { mode: 'create' });
    const { secret } = await single.addDevice({ imei: IMEI, operator: 'op', imsi: '310150123456789' });
    await single.putDeviceAccount(IMEI, { label: 'work', service: 'mail', user: 'u', secret: 'sealed' });
    await single.addAdminUser({ name: 'alice', role: 'admin', password: 'correct horse battery' });
    await single.close();

    const state = new LmdbSharedState(join(tempDir(t), 'shared'));
    t.after(() => state.close());
    // Another admin node already put an operator "op" into the cluster: it is kept.
    const other = await Registry.open(tempDir(t), { shared: state });
    await other.putRef('operators', 'op', { name: 'cluster' }, { mode: 'create' });
    await other.close();

    const joined = await Registry.open(node, { shared: state });
    assert.equal(joined.authenticate(IMEI, secret).operator, 'op');
    assert.deepEqual(
      [...joined.iterateDevicesByImsi('3101')].map((d) => d.imei),
      [IMEI],
    );
    assert.equal(joined.listDeviceAccounts(IMEI).length, 1);
    assert.ok(await joined.verifyAdminPassword('alice', 'correct horse battery'));
    assert.equal(joined.getRef('operators', 'op')?.data.name, 'cluster');
    // Removed in the cluster, the device stays removed when the node starts again.
    await joined.removeDevice(IMEI);
    await joined.close();
    const again = await Registry.open(node, { shared: state });
    t.after(() => again.close());
    assert.equal(again.getDevice(IMEI), undefined);
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

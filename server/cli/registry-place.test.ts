import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { Command } from 'commander';
import { GatewayError } from '../../device-protocol/errors.ts';
import { dataOption, describePlace, registryPlace, withPlaceOptions } from './registry-place.ts';

const THREE = 'nats://a:4222,nats://b:4222,nats://c:4222';

test('no bus: the lmdb registry of the data directory (flag, then env, then ./data)', () => {
  assert.deepEqual(registryPlace({}, {}), { kind: 'lmdb', data: resolve('./data') });
  assert.deepEqual(registryPlace({}, { MMGW_DATA: '/srv/gw' }), { kind: 'lmdb', data: '/srv/gw' });
  assert.equal(registryPlace({ data: '/x' }, { MMGW_DATA: '/srv/gw' }).data, '/x');
  assert.equal(describePlace(registryPlace({ data: '/x' }, {})), 'the lmdb registry in /x/registry');
});

test('a NATS bus from the environment, a flag or the config file: the cluster registry', (t) => {
  const env = { MMGW_BUS: THREE, MMGW_DATA: '/data', MMGW_CREDENTIALS_KEY: 'k' };
  const place = registryPlace({}, env);
  assert.deepEqual(place, {
    kind: 'cluster',
    data: '/data',
    servers: ['nats://a:4222', 'nats://b:4222', 'nats://c:4222'],
    replicas: 3,
    credentialsKey: 'k',
  });
  assert.equal(describePlace(place), `the cluster registry in NATS JetStream KV (${THREE}; 3 replicas)`);
  assert.equal(registryPlace({}, { ...env, MMGW_STATE_REPLICAS: '1' }).kind, 'cluster');
  assert.equal(describePlace(registryPlace({ bus: 'nats://one:4222' }, {})).endsWith('1 replica)'), true);
  // --bus inproc: this node's lmdb registry, whatever the environment says.
  assert.equal(registryPlace({ bus: 'inproc' }, env).kind, 'lmdb');

  const dir = mkdtempSync(join(tmpdir(), 'mmgw-place-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'mmgw.json');
  writeFileSync(file, JSON.stringify({ bus: 'nats://n1:4222', data: 'state' }));
  const fromFile = registryPlace({ config: file }, {});
  assert.equal(fromFile.kind, 'cluster');
  assert.equal(fromFile.data, resolve('state'));
  // The same file through MMGW_CONFIG.
  assert.equal(registryPlace({}, { MMGW_CONFIG: file }).kind, 'cluster');
});

test('a bad bus or config is config.invalid naming the key, before anything is opened', () => {
  assert.throws(
    () => registryPlace({ bus: 'bogus' }, {}),
    (e) => e instanceof GatewayError && e.code === 'config.invalid' && /bus/.test(e.message),
  );
  assert.throws(
    () => registryPlace({ config: '/nonexistent/mmgw.json' }, {}),
    (e) =>
      e instanceof GatewayError && e.code === 'config.invalid' && /cannot read config file/.test(e.message),
  );
});

test('every command taking --data gets --config and --bus, the others nothing', () => {
  const root = new Command('x');
  const group = root.command('group');
  group.command('leaf').addOption(dataOption());
  root.command('other').option('--json');
  withPlaceOptions(root);
  const longs = (c: Command | undefined) => c?.options.map((o) => o.long);
  assert.deepEqual(longs(group.commands[0]), ['--data', '--config', '--bus']);
  assert.deepEqual(longs(root.commands.find((c) => c.name() === 'other')), ['--json']);
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError, loadConfig } from '../../config.ts';
import { isClusterMode, stateReplicas, stateServers } from './cluster.ts';

test('cluster mode and replicas follow the bus URL unless stateReplicas says otherwise', () => {
  assert.equal(isClusterMode({ bus: 'inproc' }), false);
  const three = { bus: 'nats://a:4222, nats://b:4222,nats://c:4222' };
  assert.equal(isClusterMode(three), true);
  assert.deepEqual(stateServers(three), ['nats://a:4222', 'nats://b:4222', 'nats://c:4222']);
  assert.equal(stateReplicas(three), 3);
  assert.equal(stateReplicas({ bus: 'nats://a:4222' }), 1);
  assert.equal(stateReplicas({ bus: 'nats://a:4222', stateReplicas: 3 }), 3);
});

test('MMGW_STATE_REPLICAS is read and checked', () => {
  const env = { MMGW_BUS: 'nats://a:4222', MMGW_STATE_REPLICAS: '3' };
  assert.equal(loadConfig({ env }).stateReplicas, 3);
  assert.throws(
    () => loadConfig({ env: { ...env, MMGW_STATE_REPLICAS: '9' } }),
    (e) => e instanceof ConfigError && /stateReplicas/.test(e.message),
  );
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MAX_PROFILE_HEARTBEAT_MS, MIN_PROFILE_HEARTBEAT_MS, sessionHeartbeatMs } from './heartbeat.ts';

test("a profile's heartbeat wins, within bounds; what is not a positive whole number falls back to the edge's", () => {
  assert.equal(sessionHeartbeatMs(120_000, 30_000), 120_000);
  assert.equal(sessionHeartbeatMs(MIN_PROFILE_HEARTBEAT_MS, 30_000), MIN_PROFILE_HEARTBEAT_MS);
  assert.equal(sessionHeartbeatMs(999, 30_000), MIN_PROFILE_HEARTBEAT_MS);
  assert.equal(sessionHeartbeatMs(3_600_000, 30_000), MAX_PROFILE_HEARTBEAT_MS);
  for (const bad of [undefined, null, 0, -1, 1500.5, '60000', Number.NaN, Number.POSITIVE_INFINITY]) {
    assert.equal(sessionHeartbeatMs(bad, 30_000), 30_000, String(bad));
  }
});

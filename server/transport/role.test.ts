import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { eventually } from '../../testing/index.ts';
import { type NodeHeartbeat, Subjects } from '../bus/bus.ts';
import { InProcessBus } from '../bus/inproc.ts';
import type { Config } from '../config.ts';
import { silentLogger } from '../ops/logger.ts';
import { createMetrics } from '../ops/metrics.ts';
import { nullRecorder } from '../records/types.ts';
import { Membership } from '../router/membership.ts';
import { rendezvousPick } from '../router/rendezvous.ts';
import { transportRole } from './role.ts';

const beat = (nodeId: string, roles: string[]): NodeHeartbeat => ({
  nodeId,
  roles,
  release: 'test',
  startedAt: 1,
  ttlMs: 60_000,
  draining: false,
  sessions: 0,
  connected: 0,
  rssBytes: 0,
  cpuSeconds: 0,
});

test('a (re)started transport asks the edges for their sessions once it is a member, and takes them up', async (t) => {
  const data = mkdtempSync(join(tmpdir(), 'mmgw-transport-role-'));
  t.after(() => rmSync(data, { recursive: true, force: true }));
  const bus = new InProcessBus();
  const membership = new Membership({ bus });
  membership.start();
  t.after(async () => {
    membership.stop();
    await bus.close();
  });
  const asks: unknown[] = [];
  bus.subscribe(Subjects.edgeSessions, (m) => void asks.push(m.data));
  // The admin's answer to "what may this device use": asked when its session comes up.
  const profileAsks: string[] = [];
  bus.subscribe(Subjects.deviceProfile, (m) => {
    profileAsks.push((m.data as { imei: string }).imei);
    return { presets: [], policies: {}, accounts: [] };
  });

  const handle = await transportRole.start({
    config: { data, bus: 'inproc', credentialsKey: Buffer.alloc(32, 1).toString('base64') } as Config,
    nodeId: 't1',
    bus,
    logger: silentLogger(),
    metrics: createMetrics({ nodeId: 't1', roles: ['transport'], processMetrics: false }),
    membership,
    recorder: nullRecorder,
    announce: () => {},
  });
  t.after(() => handle.stop());
  await bus.flush();
  // Not a member yet: the edges' routers would not pick it, and it could claim others' devices.
  membership.observe(beat('other', ['edge']));
  await bus.flush();
  assert.deepEqual(asks, []);

  membership.observe(beat('t1', ['transport']));
  await eventually('the edges asked', () => asks.length === 1);
  assert.deepEqual(asks, [{ nodeId: 't1' }]);
  membership.observe(beat('t2', ['transport']));
  await bus.flush();
  assert.equal(asks.length, 1, 'asked once');

  // What an edge answers with: a session-up per session it holds. Only the devices pinned here are taken up.
  const devices = Array.from({ length: 12 }, (_, i) => `35000000000000${i}`);
  const mine = devices.filter((d) => rendezvousPick(d, ['t1', 't2']) === 't1');
  assert.ok(mine.length > 0 && mine.length < devices.length);
  for (const deviceId of devices) bus.publish(Subjects.sessionUp, { deviceId, sessionId: `s-${deviceId}` });
  await eventually('the devices pinned here taken up', () => profileAsks.length === mine.length);
  await bus.flush();
  assert.deepEqual(profileAsks.sort(), mine.sort());
});

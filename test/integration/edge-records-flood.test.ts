/**
 * Refused attempts cannot flood the records (server/edge/refusal-records.ts,
 * admin/records-store.ts): the real path, an edge recording on the bus to the admin role's
 * records store, with the registry behind the device directory. Thousands of
 * wrong Hellos for a device, from several addresses, and Hellos for IMEIs
 * that do not exist: every one is counted in /metrics, the device's log
 * still holds its own records and only a few sampled auth_failure records,
 * and the unknown IMEIs land in the bounded security log, not in device logs.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import pino from 'pino';
import { Registry as Metrics } from 'prom-client';
import { type ErrorFrame, Kind } from '../../device-protocol/messages.ts';
import { startAdminRole } from '../../admin/index.ts';
import { InProcessBus } from '../../server/bus/inproc.ts';
import { startEdge } from '../../server/edge/index.ts';
import { createBusRecorder } from '../../server/records/recorder.ts';
import { busDeviceDirectory } from '../../server/store/directory.ts';
import { Registry } from '../../server/store/registry.ts';
import { JWT_SECRET, rawClient, startEchoTransport, TRANSPORT_NODE } from './edge-client.ts';

const VICTIM = '356938035643809';
const ATTACKERS = Array.from({ length: 10 }, (_, i) => `127.0.0.${10 + i}`);
const ATTEMPTS_PER_ADDRESS = 200;
const UNKNOWN_IMEIS = 300;

test('a flood of refused attempts: counted, sampled, unknown IMEIs in the security log, the device log keeps its own', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'mmgw-records-flood-'));
  t.after(() => rmSync(dataDir, { recursive: true, force: true }));
  const logger = pino({ level: 'silent' });
  const bus = new InProcessBus();
  t.after(() => bus.close());
  startEchoTransport(bus);
  const registry = await Registry.open(dataDir);
  t.after(() => registry.close());
  const admin = await startAdminRole({ bus, registry, logger, dataDir });
  t.after(() => admin.close());
  const store = admin.records!;
  const { secret } = await registry.addDevice({ imei: VICTIM, operator: 'demo' });
  const recorder = createBusRecorder({ bus, nodeId: 'edge-1', flushMs: 100, logger });
  t.after(() => recorder.close());
  const metrics = new Metrics();
  const edge = await startEdge({
    bus,
    nodeId: 'edge-1',
    host: '127.0.0.1',
    port: 0,
    engine: 'uws',
    directory: busDeviceDirectory(bus),
    router: { pick: () => TRANSPORT_NODE },
    jwtSecret: JWT_SECRET,
    logger,
    metrics,
    recorder,
  });
  t.after(() => edge.close());

  // The device's own records: connect, disconnect, resume.
  const device = await rawClient('ws', edge.port, '127.0.0.3');
  const w = await device.hello(VICTIM, { secret });
  device.kill();
  const back = await rawClient('poll', edge.port, '127.0.0.3');
  await back.resume(w, 0);

  // Wrong secrets for the device from ten addresses, and unknown IMEIs from one more.
  const started = Date.now();
  const codes = new Map<string, number>();
  const refuse = async (from: string, imei: string, n: number, unknown: boolean) => {
    for (let i = 0; i < n; i++) {
      const c = await rawClient('poll', edge.port, from);
      const answer = await c.helloAnswer(unknown ? `35693803${1_000_000 + i}` : imei, { secret: 'wrong' });
      const code = (answer as ErrorFrame).code;
      codes.set(code, (codes.get(code) ?? 0) + 1);
    }
  };
  await Promise.all([
    ...ATTACKERS.map((from) => refuse(from, VICTIM, ATTEMPTS_PER_ADDRESS, false)),
    refuse('127.0.0.30', '', UNKNOWN_IMEIS, true),
  ]);
  const elapsedMs = Date.now() - started;
  const attempts = ATTACKERS.length * ATTEMPTS_PER_ADDRESS + UNKNOWN_IMEIS;
  assert.equal(
    [...codes.values()].reduce((a, b) => a + b, 0),
    attempts,
  );
  assert.equal(
    codes.get('auth.bad_secret'),
    10 * ATTACKERS.length,
    'ten guesses per address, then the limit',
  );
  assert.equal(codes.get('auth.unknown_device'), UNKNOWN_IMEIS);

  // Every attempt is counted.
  const counted = (await metrics.getSingleMetric('mmgw_edge_auth_failures_total')?.get())?.values ?? [];
  assert.equal(
    counted.reduce((n, v) => n + v.value, 0),
    attempts,
  );

  await recorder.flush();
  const log = store.queryLogs(VICTIM, { limit: 1000, order: 'asc' }).items;
  const kinds = log.map((r) => r.kind);
  for (const own of ['connect', 'disconnect', 'resume'] as const)
    assert.ok(kinds.includes(own), `the device keeps its ${own}`);
  const failures = log.filter((r) => r.kind === 'auth_failure');
  // One record for the device (its wrong secrets), one per address for the attempts the limit refused.
  assert.ok(
    failures.length >= 1 && failures.length <= 1 + ATTACKERS.length + 2,
    `auth_failure records in the device log: ${failures.length} for ${attempts} attempts`,
  );
  // The unknown IMEIs are in no device log, but in the security log.
  assert.equal(store.stats().devices, 1, 'a device log exists for the device only');
  const security = store.querySecurity({ limit: 100 }).items;
  assert.ok(security.length >= 1 && security.length <= 2, `security records: ${security.length}`);
  assert.equal(security[0]?.code, 'auth.unknown_device');
  assert.equal(security[0]?.detail?.address, '127.0.0.30');
  t.diagnostic(
    `${attempts} refused attempts in ${elapsedMs} ms: ${failures.length} auth_failure records in the device log, ${security.length} in the security log`,
  );
  assert.equal(back.closeInfo, undefined, 'the device stayed connected through it');
  await back.send({ kind: Kind.Ping, nonce: 1 });
  assert.equal((await back.nextOf(Kind.Pong)).nonce, 1);
});

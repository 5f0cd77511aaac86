import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeBatch } from '../../device-protocol/codec.ts';
import type { CarrierCompression } from '../../device-protocol/compression.ts';
import { eventually } from '../../testing/index.ts';
import { nullRecorder } from '../records/types.ts';
import { ACTIVE, type Carrier, type CarrierHost, PollCarrier, WsCarrier } from './carriers.ts';
import { DeviceSession } from './device-session.ts';
import type { PollExchange } from './engines/engine.ts';
import { DEFAULT_EDGE_LIMITS } from './limits.ts';
import { EdgeStats } from './metrics.ts';
import { PollTombstones } from './poll-tombstones.ts';
import { PreAuthGate } from './pre-auth.ts';
import { SessionRecords } from './session-records.ts';
import { SessionTable } from './session-table.ts';
import { Sweep, type SweepHost } from './sweep.ts';

/** heartbeat 1 s: silence after 2.5 s; resume window 10 s; compression idle 30 s; Hello deadline 60 s unless given. */
function setup(helloTimeoutMs = 60_000) {
  const clock = { now: 0 };
  const calls: string[] = [];
  const host: SweepHost = {
    table: new SessionTable(),
    unattached: new Set<Carrier>(),
    tombstones: new PollTombstones(),
    records: new SessionRecords(nullRecorder, () => clock.now),
    preAuth: new PreAuthGate({
      maxUnauthenticatedPerAddress: 4,
      maxUnauthenticated: 100,
      preAuthFramesPerSecondPerAddress: 4,
    }),
    now: () => clock.now,
    silent: (c) => calls.push(`silent ${c.session?.id ?? 'unattached'}`),
    helloOverdue: (c) => calls.push(`hello overdue ${c.address}`),
    endSession: (s, code) => {
      calls.push(`end ${s.id} ${code}`);
      host.table.remove(s);
    },
  };
  const carrierHost = {
    limits: DEFAULT_EDGE_LIMITS,
    stats: new EdgeStats(),
    now: () => clock.now,
  } as CarrierHost;
  const sweep = new Sweep(host, {
    helloTimeoutMs,
    heartbeatMs: 1000,
    resumeWindowMs: 10_000,
    compressionIdleMs: 30_000,
  });
  const attached = <C extends Carrier>(c: C, id: string): C => {
    const s = new DeviceSession(id, id.split('.')[0]!, 't');
    s.carrier = c;
    c.session = s;
    c.state = ACTIVE;
    host.table.add(s);
    return c;
  };
  return { clock, calls, host, sweep, carrierHost, attached };
}

test('silent carriers close after 2.5 heartbeats, with or without a session', () => {
  const t = setup();
  (t.host.unattached as Set<Carrier>).add(new WsCarrier(t.carrierHost));
  t.attached(new WsCarrier(t.carrierHost), '1.a');
  t.sweep.run(2500);
  assert.deepEqual(t.calls, []);
  t.sweep.run(2501);
  assert.deepEqual(t.calls, ['silent unattached', 'silent 1.a']);
});

test("a session's own heartbeat (its service profile's) sets its carrier's silence", () => {
  const t = setup();
  const slow = t.attached(new WsCarrier(t.carrierHost), '4.a');
  slow.session!.heartbeatMs = 4000;
  t.attached(new WsCarrier(t.carrierHost), '5.b');
  t.sweep.run(2501);
  assert.deepEqual(t.calls, ['silent 5.b']);
  t.sweep.run(10_000);
  assert.equal(t.calls.includes('silent 4.a'), false, '2.5 of its 4 s heartbeats have not passed');
  t.sweep.run(10_001);
  assert.ok(t.calls.includes('silent 4.a'));
});

test('a carrier without a session closes at the Hello deadline, however lively it is', () => {
  const t = setup(500);
  const c = new WsCarrier(t.carrierHost, '10.0.0.7');
  (t.host.unattached as Set<Carrier>).add(c);
  c.lastHeardAt = 450;
  t.sweep.run(500);
  assert.deepEqual(t.calls, []);
  t.sweep.run(501);
  assert.deepEqual(t.calls, ['hello overdue 10.0.0.7']);
});

test('addresses done with authenticating are forgotten once their frame bucket is full again', () => {
  const t = setup();
  const gate = t.host.preAuth;
  const e = gate.enter('10.0.0.8');
  assert.equal(gate.takeFrame(e, 0), true);
  gate.leave(e);
  t.sweep.run(100);
  assert.equal(gate.size, 1, 'a frame taken 100 ms ago: not refilled yet (4 a second)');
  t.sweep.run(250);
  assert.equal(gate.size, 0);
});

test('a detached session ends when its resume window lapses', () => {
  const t = setup();
  const s = new DeviceSession('2.a', '2', 't');
  s.detachedAt = 1000;
  t.host.table.add(s);
  t.sweep.run(11_000);
  assert.deepEqual(t.calls, []);
  t.sweep.run(11_001);
  assert.deepEqual(t.calls, ['end 2.a session.expired']);
});

test('a held GET keeps its carrier alive and is answered when its wait is over', () => {
  const t = setup();
  const p = t.attached(new PollCarrier(t.carrierHost), '3.a');
  const answers: [number, number][] = [];
  const ex = {
    respond: (status: number, body: Uint8Array) => {
      const batch = decodeBatch(body);
      answers.push([status, batch.ok ? batch.frames.length : -1]);
    },
  } as PollExchange;
  p.held = ex;
  p.heldUntil = 20_000;
  t.sweep.run(19_999);
  assert.deepEqual(t.calls, []); // long past the silence window, but a GET is held
  assert.deepEqual(answers, []);
  t.sweep.run(20_000);
  assert.deepEqual(answers, [[200, 0]]);
  assert.equal(p.held, undefined);
});

test('idle compression contexts are parked', () => {
  const t = setup();
  let parked = 0;
  const c = t.attached(new WsCarrier(t.carrierHost), '4.a');
  c.compression = { park: () => parked++ } as unknown as CarrierCompression;
  c.lastHeardAt = 30_001;
  c.compressedAt = 1;
  t.sweep.run(30_001);
  assert.equal(parked, 0);
  t.sweep.run(30_002);
  assert.equal(parked, 1);
});

test('poll tombstones last one silence window', () => {
  const t = setup();
  t.host.tombstones.keep('5.a', 'x', 410, new Uint8Array([1]), 1000);
  t.sweep.run(3500);
  assert.equal(t.host.tombstones.size, 1);
  t.sweep.run(3501);
  assert.equal(t.host.tombstones.size, 0);
});

test('the timer runs the sweep with the injected clock and stops', async () => {
  const t = setup();
  (t.host.unattached as Set<Carrier>).add(new WsCarrier(t.carrierHost));
  t.clock.now = 10_000;
  t.sweep.start();
  await eventually('a sweep tick', () => t.calls.length > 0);
  t.sweep.stop();
  assert.equal(t.calls[0], 'silent unattached');
});

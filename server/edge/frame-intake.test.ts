import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encodeFrame } from '../../device-protocol/codec.ts';
import { type Frame, Kind } from '../../device-protocol/messages.ts';
import { ACTIVE, type Carrier, type CarrierHost, CLOSED, PollCarrier } from './carriers.ts';
import type { WsDriver } from './engines/engine.ts';
import { FrameIntake } from './frame-intake.ts';
import { DEFAULT_EDGE_LIMITS, deviceDecodeLimits, type EdgeLimits } from './limits.ts';
import { EdgeStats } from './metrics.ts';

function setup(limits: EdgeLimits = DEFAULT_EDGE_LIMITS) {
  let now = 1_000;
  const stats = new EdgeStats();
  const carrierHost: CarrierHost = {
    limits,
    stats,
    wsDriver: {} as WsDriver,
    now: () => now,
    backpressure() {},
    schedulePollFlush() {},
    scheduleWsFlush() {},
    pollTombstone() {},
  };
  const calls: string[] = [];
  let addressFrames = 2;
  const intake = new FrameIntake({
    limits,
    decodeLimits: deviceDecodeLimits(limits),
    stats,
    preAuth: { takeFrame: () => addressFrames-- > 0 },
    now: () => now,
    fatal: (c, code) => {
      calls.push(`fatal ${code}`);
      c.state = CLOSED;
    },
    dispatch: (_c, frame: Frame) => calls.push(`dispatch ${frame.kind}`),
  });
  const carrier = (): Carrier => {
    const c = new PollCarrier(carrierHost);
    c.state = ACTIVE;
    c.preAuth = {} as never;
    return c;
  };
  return { intake, calls, stats, carrier, tick: (ms: number) => (now += ms) };
}

const ping = encodeFrame({ kind: Kind.Ping, nonce: 1 });

test('a good frame is counted and dispatched; the carrier stays open', () => {
  const { intake, calls, stats, carrier } = setup();
  assert.equal(intake.receive(carrier(), ping), true);
  assert.deepEqual(calls, [`dispatch ${Kind.Ping}`]);
  assert.equal(stats.framesIn, 1);
  assert.equal(stats.bytesIn, ping.length);
});

test('too large, undecodable, over the rate: each ends the carrier with its code, nothing dispatched', () => {
  const { intake, calls, carrier } = setup({ ...DEFAULT_EDGE_LIMITS, maxFrameBytes: 64 });
  // Before a session, the frames of every carrier from one address share its bucket: two tokens here.
  assert.equal(intake.receive(carrier(), new Uint8Array(65)), false, 'too large: refused before a token');
  assert.equal(intake.receive(carrier(), new Uint8Array([0xff, 0xff])), false, 'token 1, undecodable');
  assert.equal(intake.receive(carrier(), ping), true, 'token 2');
  const last = carrier();
  assert.equal(intake.receive(last, ping), false, 'no token left');
  assert.deepEqual(calls, [
    'fatal protocol.frame_too_large',
    'fatal protocol.unsupported_version',
    `dispatch ${Kind.Ping}`,
    'fatal session.rate_limited',
  ]);
  assert.equal(intake.receive(last, ping), false, 'a closed carrier takes nothing');
  assert.equal(calls.length, 4);
});

test('a long-poll GET after an answer with frames costs no token; others do', () => {
  const { intake, calls, carrier } = setup();
  const c = carrier() as PollCarrier;
  c.repollOwed = true;
  assert.equal(intake.pollRequestAllowed(c), true);
  assert.equal(intake.pollRequestAllowed(c), true);
  assert.equal(intake.pollRequestAllowed(c), true);
  assert.equal(intake.pollRequestAllowed(c), false);
  assert.deepEqual(calls, ['fatal session.rate_limited']);
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeFrame } from '../../device-protocol/codec.ts';
import { FRAME_SPECS } from '../../device-protocol/frames/index.ts';
import { type Frame, Kind } from '../../device-protocol/messages.ts';
import { ACTIVE, AUTHENTICATING, CLOSED, type CarrierHost, OPENING, PollCarrier } from './carriers.ts';
import { DeviceSession } from './device-session.ts';
import type { WsDriver } from './engines/engine.ts';
import {
  dispatchEarlyFrames,
  dispatchFrame,
  type FrameHost,
  frameTable,
  HANDLED_KINDS,
} from './frame-dispatch.ts';
import { DEFAULT_EDGE_LIMITS, MAX_EARLY_FRAMES } from './limits.ts';
import { EdgeStats } from './metrics.ts';

const carrierHost: CarrierHost = {
  limits: DEFAULT_EDGE_LIMITS,
  stats: new EdgeStats(),
  wsDriver: {} as WsDriver,
  now: () => 0,
  backpressure() {},
  schedulePollFlush() {},
  scheduleWsFlush() {},
  pollTombstone() {},
};

/** Records what the handlers asked of the edge; fatal closes the carrier as the edge does. */
function recordingHost() {
  const calls: string[] = [];
  const host: FrameHost = {
    hello: (_c, h) => calls.push(`hello ${h.imei}`),
    resume: (_c, r) => calls.push(`resume ${r.sessionId}`),
    request: (_c, s, r) => calls.push(`request ${s.id} ${r.id}`),
    endSession: (s, code, _message, resumable) => calls.push(`end ${s.id} ${code} ${resumable}`),
    fatal: (c, code, message) => {
      calls.push(`fatal ${code}: ${message}`);
      c.state = CLOSED;
    },
  };
  return { host, calls };
}

function carrierIn(state: number): PollCarrier {
  const c = new PollCarrier(carrierHost);
  c.state = state;
  if (state === ACTIVE) {
    c.session = new DeviceSession('1.s', '1', 't');
    c.session.carrier = c;
  }
  return c;
}

const hello: Frame = { kind: Kind.Hello, version: 1, imei: '356938035643809', secret: 's' };
const request: Frame = { kind: Kind.Request, id: 'r1', method: 'mail.sync' };

test('the tables accept exactly what the frame files declare the gateway receives', () => {
  const opening = frameTable('opening');
  const active = frameTable('active');
  for (const spec of FRAME_SPECS) {
    const received = spec.direction !== 'gateway→device';
    assert.equal(opening[spec.kind] !== undefined, received && spec.validIn.includes('opening'), spec.name);
    assert.equal(active[spec.kind] !== undefined, received && spec.validIn.includes('active'), spec.name);
  }
  const accepted = (t: readonly unknown[]) =>
    FRAME_SPECS.filter((s) => t[s.kind] !== undefined).map((s) => s.kind);
  assert.deepEqual(accepted(opening), [Kind.Hello, Kind.Resume]);
  assert.deepEqual(accepted(active), [Kind.Ack, Kind.Ping, Kind.Pong, Kind.Request, Kind.Bye]);
  // No handler sits unused: each one is reachable from some state.
  for (const kind of HANDLED_KINDS) {
    assert.ok(opening[kind] !== undefined || active[kind] !== undefined, `handler of ${Kind[kind]} unused`);
  }
});

test('opening: Hello and Resume go to the handshake, anything else is protocol.bad_state', () => {
  const { host, calls } = recordingHost();
  dispatchFrame(host, carrierIn(OPENING), hello);
  dispatchFrame(host, carrierIn(OPENING), {
    kind: Kind.Resume,
    version: 1,
    sessionId: 'x.y',
    resumeToken: 't',
    lastSeq: 0,
  });
  const c = carrierIn(OPENING);
  dispatchFrame(host, c, request);
  assert.deepEqual(calls, [
    'hello 356938035643809',
    'resume x.y',
    'fatal protocol.bad_state: The first frame must be Hello or Resume.',
  ]);
  assert.equal(c.state, CLOSED);
});

test('active: each accepted kind reaches its handler; the rest end the carrier', () => {
  const { host, calls } = recordingHost();
  const c = carrierIn(ACTIVE);
  const s = c.session!;
  s.append(new Uint8Array([1]));
  s.append(new Uint8Array([2]));
  dispatchFrame(host, c, { kind: Kind.Ack, seq: 1 });
  assert.equal(s.ackedSeq, 1);
  dispatchFrame(host, c, { kind: Kind.Ping, nonce: 42 });
  const pong = decodeFrame(c.outbox![0]!);
  assert.ok(pong.ok);
  assert.deepEqual(pong.frame, { kind: Kind.Pong, nonce: 42 });
  dispatchFrame(host, c, { kind: Kind.Pong, nonce: 1 });
  dispatchFrame(host, c, request);
  dispatchFrame(host, c, { kind: Kind.Bye, code: 'x', message: 'bye', resumable: false });
  assert.deepEqual(calls, ['request 1.s r1', 'end 1.s session.logout false']);

  for (const f of [hello, { kind: Kind.Event, seq: 1, name: 'mail.new' } as Frame]) {
    const { host: h2, calls: c2 } = recordingHost();
    dispatchFrame(h2, carrierIn(ACTIVE), f);
    assert.deepEqual(c2, [`fatal protocol.bad_state: A ${Kind[f.kind]} frame is not valid here.`]);
  }
});

test('authenticating: frames wait (bounded) and are dispatched after Welcome, in order', () => {
  const { host, calls } = recordingHost();
  const c = carrierIn(AUTHENTICATING);
  dispatchFrame(host, c, request);
  dispatchFrame(host, c, { kind: Kind.Request, id: 'r2', method: 'mail.sync' });
  assert.deepEqual(calls, []);
  assert.equal(c.early?.length, 2);
  c.state = ACTIVE;
  c.session = new DeviceSession('1.s', '1', 't');
  dispatchEarlyFrames(host, c);
  assert.deepEqual(calls, ['request 1.s r1', 'request 1.s r2']);
  assert.equal(c.early, undefined);

  const full = carrierIn(AUTHENTICATING);
  const { host: h2, calls: c2 } = recordingHost();
  for (let i = 0; i < MAX_EARLY_FRAMES; i++) dispatchFrame(h2, full, request);
  assert.deepEqual(c2, []);
  dispatchFrame(h2, full, request);
  assert.deepEqual(c2, ['fatal protocol.bad_state: Too many frames before Welcome.']);
});

test('early frames stop at the first one that ends the carrier', () => {
  const { host, calls } = recordingHost();
  const c = carrierIn(AUTHENTICATING);
  dispatchFrame(host, c, hello); // not valid once active
  dispatchFrame(host, c, request);
  c.state = ACTIVE;
  c.session = new DeviceSession('1.s', '1', 't');
  dispatchEarlyFrames(host, c);
  assert.deepEqual(calls, ['fatal protocol.bad_state: A Hello frame is not valid here.']);
});

test('a closed carrier takes no frames', () => {
  const { host, calls } = recordingHost();
  dispatchFrame(host, carrierIn(CLOSED), request);
  assert.deepEqual(calls, []);
});

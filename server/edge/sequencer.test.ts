import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pino } from 'pino';
import { decodeFrame } from '../../device-protocol/codec.ts';
import type { GatewayError } from '../../device-protocol/errors.ts';
import { type Frame, Kind } from '../../device-protocol/messages.ts';
import type { Carrier } from './carriers.ts';
import { DeviceSession } from './device-session.ts';
import { DEFAULT_EDGE_LIMITS } from './limits.ts';
import { Sequencer } from './sequencer.ts';

function setup(maxReplayFrames = 3) {
  const ended: string[] = [];
  const sequencer = new Sequencer(
    {
      endSession: (s, code, _message, resumable) => {
        s.ended = true;
        ended.push(`${code} resumable=${resumable}`);
      },
    },
    { ...DEFAULT_EDGE_LIMITS, maxReplayFrames },
    pino({ level: 'silent' }),
  );
  const s = new DeviceSession('1.a', '1', 't');
  const appended: number[] = [];
  s.carrier = { appended: (seq: number) => appended.push(seq) } as unknown as Carrier;
  return { sequencer, s, ended, appended };
}

const event = (name: string): Frame => ({ kind: Kind.Event, seq: 0, name });

test('frames get the next seq, are kept encoded for replay and handed to the carrier', () => {
  const t = setup();
  assert.equal(t.sequencer.append(t.s, event('a')), 1);
  assert.equal(t.sequencer.append(t.s, event('b')), 2);
  assert.deepEqual(t.appended, [1, 2]);
  const kept = decodeFrame(t.s.frameAt(2)!);
  assert.ok(kept.ok);
  assert.deepEqual(kept.frame, { kind: Kind.Event, seq: 2, name: 'b' });
});

test('a full replay buffer ends the session (not resumable) and refuses the frame', () => {
  const t = setup(2);
  t.sequencer.append(t.s, event('a'));
  t.sequencer.append(t.s, event('b'));
  assert.throws(
    () => t.sequencer.append(t.s, event('c')),
    (err: GatewayError) => err.code === 'session.backpressure',
  );
  assert.deepEqual(t.ended, ['session.backpressure resumable=false']);
  assert.equal(t.s.nextSeq, 3);
  // Acked frames make room again.
  const u = setup(2);
  u.sequencer.append(u.s, event('a'));
  u.s.ack(1);
  u.sequencer.append(u.s, event('b'));
  assert.equal(u.sequencer.append(u.s, event('c')), 3);
  assert.deepEqual(u.ended, []);
});

test('a frame that cannot be encoded is request.bad_input and takes no seq', () => {
  const t = setup();
  const bad = { kind: Kind.Response, seq: 0, id: 'r', body: { f: () => 1 } } as unknown as Frame;
  assert.throws(
    () => t.sequencer.append(t.s, bad),
    (err: GatewayError) => err.code === 'request.bad_input',
  );
  assert.equal(t.s.nextSeq, 1);
  assert.deepEqual(t.appended, []);
});

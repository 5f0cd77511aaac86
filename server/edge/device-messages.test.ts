import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GatewayError } from '../../device-protocol/errors.ts';
import { type Frame, Kind } from '../../device-protocol/messages.ts';
import { type BusMessage, Subjects } from '../bus/bus.ts';
import { DeviceSession } from './device-session.ts';
import { type DeviceMessageHost, deviceMessageHandler } from './device-messages.ts';

const IMEI = '356938035643809';

/** A handler over fakes that record what each message led to. */
function setup(session?: DeviceSession) {
  const calls: string[] = [];
  const appended: Frame[] = [];
  const host: DeviceMessageHost = {
    table: {
      get: (imei) => (imei === session?.imei ? session : undefined),
      getById: (id) => (id === session?.id ? session : undefined),
    },
    handoff: {
      notHere: (_msg, imei, m) => calls.push(`notHere ${imei} ${m.type}`),
      takeoverReceived: (_s, m) => calls.push(`takeover ${m.sessionId}`),
      claimReceived: (_msg, imei) => calls.push(`claim ${imei}`),
    },
    appendSequenced: (_s, frame) => appended.push(frame),
    answerPassedOn: (s, m) => calls.push(`answer ${s.id} ${m.id}`),
    endSession: (s, code) => calls.push(`end ${s.id} ${code}`),
    servePoll: async (m) => {
      calls.push(`poll ${m.sessionId} ${m.method}`);
      return { status: 200, body: new Uint8Array(0) };
    },
    logger: { info: () => {} },
  };
  const handle = deviceMessageHandler(host);
  const send = (data: unknown) => handle({ subject: Subjects.device(IMEI), data } as BusMessage);
  return { calls, appended, send };
}

test('an event for a session here is sequenced; without a session it goes to the hand-off', () => {
  const s = new DeviceSession(`${IMEI}.a`, IMEI, 't');
  // Only whether a carrier is attached matters here, not which.
  s.carrier = {} as NonNullable<DeviceSession['carrier']>;
  const t = setup(s);
  assert.deepEqual(t.send({ type: 'event', name: 'mail.new', body: { n: 1 } }), { seq: 1 });
  assert.deepEqual(t.appended, [{ kind: Kind.Event, seq: 0, name: 'mail.new', body: { n: 1 } }]);
  const none = setup();
  none.send({ type: 'event', name: 'x' });
  assert.deepEqual(none.calls, [`notHere ${IMEI} event`]);
  s.ended = true;
  t.send({ type: 'event', name: 'late' });
  assert.deepEqual(t.calls, [`notHere ${IMEI} event`], 'an ended session is not here either');
});

test('an event for a session without a carrier (kept for resume) is sequenced and said to be detached', () => {
  const s = new DeviceSession(`${IMEI}.a`, IMEI, 't');
  s.carrier = {} as NonNullable<DeviceSession['carrier']>;
  const t = setup(s);
  assert.deepEqual(t.send({ type: 'event', name: 'im.message' }), { seq: 1 });
  s.carrier = undefined;
  assert.deepEqual(t.send({ type: 'event', name: 'mail.new' }), { seq: 2, detached: true });
  assert.deepEqual(
    t.appended.map((f) => (f.kind === Kind.Event ? f.name : f.kind)),
    ['im.message', 'mail.new'],
    'held in the replay buffer all the same',
  );
});

test('revoke ends the session; takeover and claim go to the hand-off; answers follow their session', () => {
  const s = new DeviceSession(`${IMEI}.a`, IMEI, 't');
  const t = setup(s);
  t.send({ type: 'takeover', sessionId: 'newer', byNode: 'n' });
  t.send({ type: 'claim', sessionId: s.id, resumeToken: 't', byNode: 'n' });
  t.send({ type: 'answer', sessionId: s.id, id: 'r1' });
  t.send({ type: 'answer', sessionId: `${IMEI}.older`, id: 'r2' });
  t.send({ type: 'revoke', code: 'auth.disabled', reason: 'disabled' });
  assert.deepEqual(t.calls, [
    'takeover newer',
    `claim ${IMEI}`,
    `answer ${s.id} r1`,
    `end ${s.id} auth.disabled`,
  ]);
  assert.deepEqual(t.send({ type: 'answer', sessionId: `${IMEI}.older`, id: 'r3' }), { ok: false });
});

test('a forwarded poll request is served for the session here; without it it goes to the hand-off', async () => {
  const s = new DeviceSession(`${IMEI}.a`, IMEI, 't');
  const t = setup(s);
  const poll = { type: 'poll', sessionId: s.id, token: 't', method: 'GET', query: 'wait=0' };
  assert.deepEqual(await t.send(poll), { status: 200, body: new Uint8Array(0) });
  assert.deepEqual(t.calls, [`poll ${s.id} GET`]);
  // Another session of the device is here: the one asked for is nowhere.
  assert.throws(
    () => t.send({ ...poll, sessionId: `${IMEI}.older` }),
    (err: GatewayError) => err.code === 'auth.resume_failed',
  );
  const none = setup();
  none.send({ ...poll, method: 'POST', body: new Uint8Array([1]) });
  assert.deepEqual(none.calls, [`notHere ${IMEI} poll`]);
  for (const bad of [
    { ...poll, method: 'PUT' },
    { ...poll, token: 1 },
    { ...poll, query: 'x'.repeat(257) },
    { ...poll, body: 'text' },
  ]) {
    assert.throws(
      () => t.send(bad),
      (err: GatewayError) => err.code === 'bus.bad_message',
    );
  }
  assert.deepEqual(t.calls, [`poll ${s.id} GET`], 'nothing served for a bad one');
});

test('bad messages are typed errors: not an object, an unknown type, an event without a name', () => {
  const t = setup(new DeviceSession(`${IMEI}.a`, IMEI, 't'));
  const code = (data: unknown) => {
    try {
      t.send(data);
      return 'none';
    } catch (err) {
      return err instanceof GatewayError ? err.code : 'untyped';
    }
  };
  assert.equal(code(null), 'bus.bad_message');
  assert.equal(code('text'), 'bus.bad_message');
  assert.equal(code({ type: 'nonsense' }), 'bus.bad_message');
  assert.equal(code({ type: 'event', name: '' }), 'request.bad_input');
  assert.equal(code({ type: 'event' }), 'request.bad_input');
});

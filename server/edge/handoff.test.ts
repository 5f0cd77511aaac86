import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GatewayError } from '../../device-protocol/errors.ts';
import { fakeEdge } from '../../testing/fake-edge.ts';
import { type BusMessage, Subjects } from '../bus/bus.ts';
import { InProcessBus } from '../bus/inproc.ts';
import { DeviceSession } from './device-session.ts';
import type { ClaimMessage, EdgeDeviceMessage } from './edge-messages.ts';
import { CLAIM_PATIENCE } from './handoff.ts';

const IMEI = '356938035643809';
const BUS_TIMEOUT_MS = 1000;

function sessionWithFrames(): DeviceSession {
  const s = new DeviceSession(`${IMEI}.abc`, IMEI, 'resume-token');
  s.append(new Uint8Array([1]));
  s.append(new Uint8Array([2]));
  s.ack(1);
  return s;
}

function claim(s: DeviceSession, fields: Partial<ClaimMessage> = {}): ClaimMessage {
  return { type: 'claim', sessionId: s.id, resumeToken: s.resumeToken, byNode: 'other~1', ...fields };
}

const deviceMsg = { subject: Subjects.device(IMEI), data: undefined } as BusMessage;

test('the holder refuses a claim that expired by its clock, retryably, and keeps the session', () => {
  const clock = { now: 50_000 };
  const holder = fakeEdge(new InProcessBus(), 'holder~1', clock);
  const s = sessionWithFrames();
  holder.table.add(s);
  assert.throws(
    () => holder.handoff.claimReceived(deviceMsg, IMEI, s, claim(s, { issuedAt: 10_000, expiresAt: 49_999 })),
    (err: GatewayError) => err.code === 'bus.timeout' && err.retryable,
  );
  assert.equal(holder.table.get(IMEI), s);
  assert.equal(s.ended, false);
  assert.equal(s.moved, false);
  assert.deepEqual(holder.ended, []);
  // The same claim a moment earlier by the holder's clock hands the session over.
  clock.now = 49_999;
  const snapshot = holder.handoff.claimReceived(deviceMsg, IMEI, s, claim(s, { expiresAt: 49_999 }));
  assert.equal((snapshot as { sessionId: string }).sessionId, s.id);
});

test('the holder refuses a claim issued before the newest resume of the session', async () => {
  const clock = { now: 20_000 };
  const holder = fakeEdge(new InProcessBus(), 'holder~1', clock);
  const s = sessionWithFrames();
  holder.table.add(s);
  // A Resume here stamps the session with the injected clock.
  assert.equal(await holder.handoff.findForResume(IMEI, s.id, s.resumeToken), s);
  assert.equal(s.resumedAt, 20_000);
  assert.throws(
    () => holder.handoff.claimReceived(deviceMsg, IMEI, s, claim(s, { issuedAt: 19_999, expiresAt: 90_000 })),
    (err: GatewayError) => err.code === 'auth.resume_failed' && /newer resume/.test(err.message),
  );
  assert.equal(s.ended, false);
});

test('a valid claim hands the snapshot over and ends the session here as moved', () => {
  const holder = fakeEdge(new InProcessBus(), 'holder~1', { now: 1000 });
  const s = sessionWithFrames();
  holder.table.add(s);
  const snapshot = holder.handoff.claimReceived(
    deviceMsg,
    IMEI,
    s,
    claim(s, { issuedAt: 1000, expiresAt: 5000 }),
  ) as ReturnType<DeviceSession['snapshot']>;
  assert.equal(snapshot.sessionId, s.id);
  assert.equal(snapshot.firstSeq, 2);
  assert.deepEqual(snapshot.frames, [new Uint8Array([2])]);
  assert.equal(s.moved, true);
  assert.deepEqual(holder.ended, [`${s.id} session.moved resumable=true`]);
});

test('claims with the wrong token, another session id or from this edge itself are refused', () => {
  const holder = fakeEdge(new InProcessBus(), 'holder~1', { now: 1000 });
  const s = sessionWithFrames();
  holder.table.add(s);
  for (const bad of [{ resumeToken: 'wrong' }, { sessionId: `${IMEI}.other` }, { byNode: 'holder~1' }]) {
    assert.throws(
      () => holder.handoff.claimReceived(deviceMsg, IMEI, s, claim(s, bad)),
      (err: GatewayError) => err.code === 'auth.resume_failed',
    );
  }
  assert.equal(s.ended, false);
});

test('a Resume on another edge claims the session over the bus, with times from its clock', async () => {
  const bus = new InProcessBus();
  const holder = fakeEdge(bus, 'holder~1', { now: 100_000 });
  const claimer = fakeEdge(bus, 'claimer~1', { now: 100_000 });
  const s = sessionWithFrames();
  holder.addSession(s);
  const moved = await claimer.handoff.findForResume(IMEI, s.id, s.resumeToken);
  assert.equal(moved.id, s.id);
  assert.equal(moved.resumedAt, 100_000);
  assert.equal(moved.detachedAt, 100_000);
  assert.deepEqual(moved.frameAt(2), new Uint8Array([2]));
  assert.equal(claimer.table.get(IMEI), moved);
  assert.equal(holder.table.get(IMEI), undefined);
  assert.deepEqual(holder.ended, [`${s.id} session.moved resumable=true`]);
  const patience = BUS_TIMEOUT_MS * CLAIM_PATIENCE;
  assert.equal(holder.claims[0]?.issuedAt, 100_000);
  assert.equal(holder.claims[0]?.expiresAt, 100_000 + patience - Math.min(2000, patience / 4));
  // The claimed session now takes the device's messages on the claimer.
  assert.deepEqual(await bus.request(Subjects.device(IMEI), { type: 'event', name: 'x' }), {
    here: 'claimer~1',
  });
});

test('a holder whose clock is past the claim keeps the session; the device is told to retry', async () => {
  const bus = new InProcessBus();
  const holder = fakeEdge(bus, 'holder~1', { now: 200_000 });
  const claimer = fakeEdge(bus, 'claimer~1', { now: 100_000 });
  const s = sessionWithFrames();
  holder.addSession(s);
  await assert.rejects(
    claimer.handoff.findForResume(IMEI, s.id, s.resumeToken),
    (err: GatewayError) => err.code === 'session.busy' && err.retryable && err.retryAfterMs !== undefined,
  );
  assert.equal(holder.table.get(IMEI), s);
  assert.equal(s.ended, false);
  assert.equal(claimer.table.get(IMEI), undefined);
});

test('a Resume for a session nobody holds, or with the wrong token here, fails auth.resume_failed', async () => {
  const bus = new InProcessBus();
  const edge = fakeEdge(bus, 'edge~1', { now: 1 });
  await assert.rejects(edge.handoff.findForResume(IMEI, `${IMEI}.gone`, 't'), { code: 'auth.resume_failed' });
  const s = sessionWithFrames();
  edge.addSession(s);
  await assert.rejects(edge.handoff.findForResume(IMEI, s.id, 'wrong'), { code: 'auth.resume_failed' });
});

test('a Resume stops waiting for a slow holder after the bus timeout (retryable)', async () => {
  const bus = new InProcessBus();
  const claimer = fakeEdge(bus, 'claimer~1', { now: 1 }, 20);
  let refuse: (err: unknown) => void = () => {};
  const slow = bus.subscribe(Subjects.device(IMEI), () => new Promise((_, reject) => (refuse = reject)));
  await assert.rejects(
    claimer.handoff.findForResume(IMEI, `${IMEI}.abc`, 'resume-token'),
    (err: GatewayError) => err.code === 'session.busy' && err.retryable && /busy elsewhere/.test(err.message),
  );
  refuse(new GatewayError('auth.resume_failed')); // lets the claim itself end
  slow.unsubscribe();
});

test('takeovers end a session of the device here unless they come from this edge or name it', () => {
  const edge = fakeEdge(new InProcessBus(), 'edge~1', { now: 1 });
  const s = sessionWithFrames();
  edge.table.add(s);
  edge.handoff.takeoverReceived(s, { type: 'takeover', sessionId: `${IMEI}.new`, byNode: 'edge~1' });
  edge.handoff.takeoverReceived(s, { type: 'takeover', sessionId: s.id, byNode: 'other~1' });
  assert.deepEqual(edge.ended, []);
  edge.handoff.takeoverReceived(s, { type: 'takeover', sessionId: `${IMEI}.new`, byNode: 'other~1' });
  assert.deepEqual(edge.ended, [`${s.id} session.replaced resumable=false`]);
});

test('device messages are passed on a bounded number of hops', async () => {
  const bus = new InProcessBus();
  const edge = fakeEdge(bus, 'edge~1', { now: 1 });
  const event: EdgeDeviceMessage = { type: 'event', name: 'x', hops: 3 };
  await assert.rejects(Promise.resolve(edge.handoff.notHere(deviceMsg, IMEI, event)), {
    code: 'bus.no_responders',
  });
  const got: unknown[] = [];
  const other = bus.subscribe(Subjects.device(IMEI), (msg) => {
    got.push(msg.data);
    return { ok: true };
  });
  const claimAt11 = claim(sessionWithFrames(), { hops: 11 });
  assert.deepEqual(await edge.handoff.notHere(deviceMsg, IMEI, claimAt11), { ok: true });
  assert.equal((got[0] as ClaimMessage).hops, 12);
  await assert.rejects(Promise.resolve(edge.handoff.notHere(deviceMsg, IMEI, { ...claimAt11, hops: 12 })), {
    code: 'bus.no_responders',
  });
  other.unsubscribe();
});

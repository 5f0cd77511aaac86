import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pino } from 'pino';
import { fakeEdge } from '../../testing/fake-edge.ts';
import { type BusMessage, Subjects } from '../bus/bus.ts';
import { InProcessBus } from '../bus/inproc.ts';
import { DeviceSession } from './device-session.ts';
import { DrainHandover, OFFER_BATCH, parseOffer } from './drain-handover.ts';

const logger = pino({ level: 'silent' });
const BUS_TIMEOUT_MS = 1000;

function imei(i: number): string {
  return `35693803564${String(i).padStart(4, '0')}`;
}

/** A fake edge (testing/fake-edge.ts) with its drain hand-over, listening for offers. */
function edgeWithHandover(bus: InProcessBus, id: string, clock: { now: number }) {
  const edge = fakeEdge(bus, id, clock);
  const state = { draining: false };
  const handover = new DrainHandover(
    {
      instanceId: id,
      get draining() {
        return state.draining;
      },
      get closed() {
        return edge.closed;
      },
      sessions: () => edge.table.values(),
      adopt: (imei, sessionId, token) => edge.handoff.adopt(imei, sessionId, token),
    },
    { bus, busTimeoutMs: BUS_TIMEOUT_MS, logger },
  );
  handover.listen();
  return { edge, handover, state };
}

function holdSessions(edge: ReturnType<typeof fakeEdge>, n: number): DeviceSession[] {
  const sessions: DeviceSession[] = [];
  for (let i = 0; i < n; i++) {
    const s = new DeviceSession(`${imei(i)}.s`, imei(i), `token-${i}`);
    s.append(new Uint8Array([i, 1]));
    s.append(new Uint8Array([i, 2]));
    s.ack(s.lastSeq - 1);
    edge.addSession(s);
    sessions.push(s);
  }
  return sessions;
}

test('a draining edge hands every session to the survivor, replay buffer and seqs included', async () => {
  const bus = new InProcessBus();
  const clock = { now: 10_000 };
  const a = edgeWithHandover(bus, 'a~1', clock);
  const b = edgeWithHandover(bus, 'b~1', clock);
  const held = holdSessions(a.edge, OFFER_BATCH + 3); // two offers
  a.state.draining = true;
  const outcome = await a.handover.handOverAll(() => clock.now, clock.now + 60_000);
  assert.deepEqual(outcome, { handedOver: held.length, left: 0, survivor: true });
  assert.equal(a.edge.table.size, 0);
  assert.equal(b.edge.table.size, held.length);
  for (const s of held) {
    assert.equal(s.moved, true);
    const there = b.edge.table.getById(s.id);
    assert.ok(there, s.id);
    assert.equal(there.nextSeq, s.nextSeq);
    assert.equal(there.ackedSeq, s.ackedSeq);
    assert.deepEqual(there.frameAt(s.lastSeq), s.frameAt(s.lastSeq));
    assert.equal(there.resumeToken, s.resumeToken);
    // An adoption is not a resume by the device: a Resume elsewhere later still wins.
    assert.equal(there.resumedAt, 0);
  }
  // Events now reach the survivor: the device subject moved with the session.
  const reply = await bus.request<{ here: string }>(Subjects.device(imei(0)), { type: 'event', name: 'x' });
  assert.equal(reply.here, 'b~1');
});

test('with no other edge the sessions stay, and the outcome says there is no survivor', async () => {
  const bus = new InProcessBus();
  const clock = { now: 1 };
  const a = edgeWithHandover(bus, 'a~1', clock);
  holdSessions(a.edge, 2);
  a.state.draining = true;
  assert.deepEqual(await a.handover.handOverAll(() => clock.now, 60_000), {
    handedOver: 0,
    left: 2,
    survivor: false,
  });
  assert.equal(a.edge.table.size, 2);
});

test('an edge that drains itself refuses offers; the offer goes to one that serves', async () => {
  const bus = new InProcessBus();
  const clock = { now: 1 };
  const a = edgeWithHandover(bus, 'a~1', clock);
  const b = edgeWithHandover(bus, 'b~1', clock);
  b.state.draining = true;
  holdSessions(a.edge, 1);
  a.state.draining = true;
  // Only b listens (a stopped when it began): every attempt is refused, a keeps its session.
  const outcome = await a.handover.handOverAll(() => clock.now, 60_000);
  assert.deepEqual(outcome, { handedOver: 0, left: 1, survivor: false });
  // b goes on to hand over its own sessions (it stops listening); c serves.
  b.handover.stopListening();
  const c = edgeWithHandover(bus, 'c~1', clock);
  const again = await a.handover.handOverAll(() => clock.now, 60_000);
  assert.equal(again.left, 0);
  assert.equal(c.edge.table.size, 1);
  assert.equal(b.edge.table.size, 0);
});

test('a survivor that takes none of a batch ends the hand-over instead of offering it forever', async () => {
  const bus = new InProcessBus();
  const clock = { now: 1 };
  const a = edgeWithHandover(bus, 'a~1', clock);
  holdSessions(a.edge, 1);
  bus.subscribe(Subjects.edgeHandover, () => ({ taken: [] }), { queue: 'mmgw.edge' });
  a.state.draining = true;
  assert.deepEqual(await a.handover.handOverAll(() => clock.now, 60_000), {
    handedOver: 0,
    left: 1,
    survivor: true,
  });
});

test('the deadline on the injected clock ends the hand-over', async () => {
  const bus = new InProcessBus();
  const clock = { now: 5000 };
  const a = edgeWithHandover(bus, 'a~1', clock);
  edgeWithHandover(bus, 'b~1', clock);
  holdSessions(a.edge, 1);
  assert.deepEqual(await a.handover.handOverAll(() => clock.now, 5000), {
    handedOver: 0,
    left: 1,
    survivor: false,
  });
});

test('an offer is checked in full: anything else is bus.bad_message and nothing is claimed', async () => {
  const bus = new InProcessBus();
  const b = edgeWithHandover(bus, 'b~1', { now: 1 });
  const good = { imei: imei(1), sessionId: 's', resumeToken: 't' };
  const bad: unknown[] = [
    null,
    'offer',
    { type: 'offer', v: 2, byNode: 'x', sessions: [] },
    { type: 'offer', v: 1, byNode: '', sessions: [] },
    { type: 'offer', v: 1, byNode: 'x', sessions: {} },
    { type: 'offer', v: 1, byNode: 'x', sessions: [good, { ...good, imei: 'a.b' }] },
    { type: 'offer', v: 1, byNode: 'x', sessions: [{ ...good, sessionId: 7 }] },
    { type: 'offer', v: 1, byNode: 'x', sessions: Array.from({ length: OFFER_BATCH + 1 }, () => good) },
  ];
  for (const data of bad) {
    assert.throws(() => parseOffer(data), { code: 'bus.bad_message' });
    await assert.rejects(b.handover.offered({ subject: Subjects.edgeHandover, data } as BusMessage), {
      code: 'bus.bad_message',
    });
  }
  assert.equal(b.edge.claims.length, 0);
  assert.deepEqual(parseOffer({ type: 'offer', v: 1, byNode: 'x', sessions: [good], extra: 1 }).sessions, [
    good,
  ]);
});

test('an offered session with a wrong resume token is not taken', async () => {
  const bus = new InProcessBus();
  const clock = { now: 1 };
  const a = edgeWithHandover(bus, 'a~1', clock);
  const b = edgeWithHandover(bus, 'b~1', clock);
  const [s] = holdSessions(a.edge, 1);
  const reply = await b.handover.offered({
    subject: Subjects.edgeHandover,
    data: {
      type: 'offer',
      v: 1,
      byNode: 'a~1',
      sessions: [{ imei: s!.imei, sessionId: s!.id, resumeToken: 'wrong' }],
    },
  } as BusMessage);
  assert.deepEqual(reply, { taken: [] });
  assert.equal(a.edge.table.getById(s!.id), s);
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pino } from 'pino';
import { decodeBatch, decodeFrame } from '../../device-protocol/codec.ts';
import { GatewayError } from '../../device-protocol/errors.ts';
import { type Frame, Kind } from '../../device-protocol/messages.ts';
import { type BusMessage, Subjects } from '../bus/bus.ts';
import { InProcessBus } from '../bus/inproc.ts';
import type { PollExchange } from './carriers.ts';
import type { PollMessage } from './edge-messages.ts';
import { forwardTimeoutMs, PollForwarding } from './poll-forward.ts';

const IMEI = '356938035643809';
const logger = pino({ level: 'silent' });

/** An exchange as an engine hands it over, recording its answer. */
function exchange(method: 'GET' | 'POST', query = '', body = new Uint8Array(0)) {
  const answers: { status: number; body: Uint8Array; close: boolean }[] = [];
  const ex: PollExchange = {
    method,
    sessionId: `${IMEI}.abc`,
    token: 'tok',
    query,
    remoteAddress: '127.0.0.1',
    body,
    aborted: false,
    onAborted: undefined,
    carrier: undefined,
    respond(status, b, close = false) {
      answers.push({ status, body: b, close });
    },
  };
  return { ex, answers };
}

/** Resolves once `cond` holds (the bus delivers on later turns); the test runner's timeout bounds it. */
function until(cond: () => boolean): Promise<void> {
  return new Promise((resolve) => {
    const check = () => (cond() ? resolve() : setTimeout(check, 5));
    check();
  });
}

function frames(body: Uint8Array): Frame[] {
  const batch = decodeBatch(body);
  assert.ok(batch.ok);
  return batch.frames.map((b) => {
    const one = decodeFrame(b);
    assert.ok(one.ok);
    return one.frame;
  });
}

function forwarding(bus: InProcessBus, served: PollExchange[], busTimeoutMs = 1000) {
  let counted = 0;
  const f = new PollForwarding({
    bus,
    busTimeoutMs,
    logger,
    serve: (ex) => served.push(ex),
    counted: () => counted++,
  });
  return { f, count: () => counted };
}

test('the holder serves a forwarded request as its own; the answer goes back to the exchange', async (t) => {
  const bus = new InProcessBus();
  t.after(() => bus.close());
  const atHolder: PollExchange[] = [];
  const holder = forwarding(bus, atHolder);
  const seen: PollMessage[] = [];
  bus.subscribe(Subjects.device(IMEI), (msg: BusMessage) => {
    seen.push(msg.data as PollMessage);
    return holder.f.serve(msg.data as PollMessage);
  });
  const here: PollExchange[] = [];
  const edge = forwarding(bus, here);
  const { ex, answers } = exchange('POST', 'x=1', new Uint8Array([1, 2, 3]));
  edge.f.forward(IMEI, ex);
  assert.equal(ex.forwarded, true);
  assert.equal(edge.count(), 1);
  await until(() => atHolder.length > 0);
  // The holder's long-poll code got an exchange with what the device sent (no address: not needed).
  const served = atHolder[0]!;
  assert.equal(served.forwarded, true);
  assert.deepEqual(
    [served.method, served.sessionId, served.token, served.query, [...served.body], served.remoteAddress],
    ['POST', `${IMEI}.abc`, 'tok', 'x=1', [1, 2, 3], ''],
  );
  assert.equal(seen[0]?.type, 'poll');
  served.respond(410, new Uint8Array([9]), true);
  served.respond(200, new Uint8Array([8])); // once only
  await until(() => answers.length > 0);
  assert.deepEqual(answers, [{ status: 410, body: new Uint8Array([9]), close: true }]);
  assert.deepEqual(here, [], 'nothing served on the edge the request landed on');
});

test('nobody holds the session, or the holder has another: the request is served where it landed', async (t) => {
  const bus = new InProcessBus();
  t.after(() => bus.close());
  const here: PollExchange[] = [];
  const edge = forwarding(bus, here);
  const first = exchange('GET', 'wait=0');
  edge.f.forward(IMEI, first.ex);
  await until(() => here.length > 0);
  assert.deepEqual(here, [first.ex]);
  assert.equal(first.ex.forwarded, true, 'served here, it is not passed on again');
  bus.subscribe(Subjects.device(IMEI), () => {
    throw new GatewayError('auth.resume_failed');
  });
  const second = exchange('GET', 'wait=0');
  edge.f.forward(IMEI, second.ex);
  await until(() => here.length > 1);
  assert.deepEqual(here, [first.ex, second.ex]);
  assert.deepEqual(first.answers, []);
});

test('a holder whose subscription has not reached the bus yet is asked again, and serves', async (t) => {
  const bus = new InProcessBus();
  t.after(() => bus.close());
  const here: PollExchange[] = [];
  const edge = forwarding(bus, here);
  const { ex, answers } = exchange('GET', 'wait=0');
  let asked = 0;
  const realRequest = bus.request.bind(bus);
  bus.request = ((subject: string, data: unknown, o?: object) => {
    // The holder's subscription arrives after the first ask came back with no responder.
    if (++asked === 2)
      bus.subscribe(Subjects.device(IMEI), () => ({ status: 200, body: new Uint8Array([7]) }));
    return realRequest(subject, data, o);
  }) as typeof bus.request;
  edge.f.forward(IMEI, ex);
  await until(() => answers.length > 0 || here.length > 0);
  assert.deepEqual(answers, [{ status: 200, body: new Uint8Array([7]), close: false }]);
  assert.deepEqual(here, [], 'not refused where it landed');
  assert.equal(edge.count(), 1, 'counted once');
});

test('a holder that does not answer in time: 503 session.busy (retryable), not a new session', async (t) => {
  const bus = new InProcessBus();
  t.after(() => bus.close());
  bus.subscribe(Subjects.device(IMEI), () => new Promise(() => {}));
  const here: PollExchange[] = [];
  const edge = forwarding(bus, here, 20);
  const { ex, answers } = exchange('GET', 'wait=0');
  edge.f.forward(IMEI, ex);
  await until(() => answers.length > 0);
  assert.equal(answers[0]?.status, 503);
  const [frame] = frames(answers[0]!.body);
  assert.equal(frame?.kind, Kind.Error);
  assert.equal((frame as { code: string }).code, 'session.busy');
  assert.deepEqual(here, []);
});

test('a forwarded GET waits as long as it may be held; a POST one bus timeout', () => {
  const m = (method: 'GET' | 'POST', query: string): PollMessage => ({
    type: 'poll',
    sessionId: `${IMEI}.a`,
    token: 't',
    method,
    query,
  });
  assert.equal(forwardTimeoutMs(m('GET', 'wait=1000&ack=3'), 3000), 4000);
  assert.equal(forwardTimeoutMs(m('GET', 'ack=3'), 3000), 28_000);
  assert.equal(forwardTimeoutMs(m('GET', 'wait=999999'), 3000), 33_000);
  assert.equal(forwardTimeoutMs(m('POST', 'wait=1000'), 3000), 3000);
});

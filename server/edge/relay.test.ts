import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pino } from 'pino';
import { ERROR_CODES, GatewayError } from '../../device-protocol/errors.ts';
import { type Frame, Kind, type Request } from '../../device-protocol/messages.ts';
import { type LeaveFacts, Subjects } from '../bus/bus.ts';
import { eventually } from '../../testing/index.ts';
import { InProcessBus } from '../bus/inproc.ts';
import type { TransportRequest } from '../transport/types.ts';
import type { Carrier } from './carriers.ts';
import { DeviceSession } from './device-session.ts';
import type { AnswerMessage } from './edge-messages.ts';
import { MAX_INFLIGHT_REQUESTS } from './limits.ts';
import { RequestRelay, requestFailure } from './relay.ts';

const IMEI = '356938035643809';
const NODE = 'transport-1';

/**
 * A relay over an in-process bus with one transport node whose methods are
 * given per test. Sequenced frames are collected; the carrier records resends.
 */
function setup(
  methods: Record<string, (r: TransportRequest) => unknown>,
  pick = (): string | undefined => NODE,
  // Long by default: a loaded machine must not turn a slow answer into a timeout.
  requestTimeoutMs = 30_000,
  onLeave?: (listener: (nodeId: string, left: LeaveFacts) => void) => () => void,
  drainedAnswerMs?: number,
) {
  const bus = new InProcessBus();
  const calls: TransportRequest[] = [];
  bus.subscribe(Subjects.transportRequest(NODE), (msg) => {
    const r = msg.data as TransportRequest;
    calls.push(r);
    const method = methods[r.method];
    if (method === undefined) throw new GatewayError('request.unknown_method');
    return method(r);
  });
  const sent: Frame[] = [];
  const relay = new RequestRelay(
    {
      appendSequenced(s, frame) {
        (frame as { seq: number }).seq = s.nextSeq;
        sent.push(frame);
        return s.append(new Uint8Array([frame.kind]));
      },
    },
    {
      bus,
      router: { pick, ...(onLeave ? { onLeave } : {}) },
      requestTimeoutMs,
      busTimeoutMs: 100,
      ...(drainedAnswerMs === undefined ? {} : { drainedAnswerMs }),
      logger: pino({ level: 'silent' }),
    },
  );
  const session = new DeviceSession(`${IMEI}.abc`, IMEI, 'token');
  const resent: number[] = [];
  const carrier = { resend: (seq: number) => resent.push(seq) } as unknown as Carrier;
  const send = (id: string, method = 'echo') => {
    const r: Request = { kind: Kind.Request, id, method, body: { n: 1 } };
    relay.request(carrier, session, r);
  };
  return { bus, relay, session, sent, calls, resent, send };
}

const settled = (sent: Frame[], n: number) => eventually(`${n} frames sequenced`, () => sent.length >= n);

test('a request goes to the picked transport node and its answer is sequenced and remembered', async () => {
  const t = setup({ echo: (r) => ({ got: r.body as never }) });
  t.send('r1');
  await settled(t.sent, 1);
  assert.equal(t.calls.length, 1);
  assert.equal(t.calls[0]?.deviceId, IMEI);
  assert.equal(t.calls[0]?.sessionId, t.session.id);
  assert.deepEqual(t.sent[0], { kind: Kind.Response, seq: 1, id: 'r1', body: { got: { n: 1 } } });
  assert.equal(t.session.inflightCount, 0);
  t.send('r1'); // answered already: resent from memory, not run again
  assert.deepEqual(t.resent, [1]);
  assert.equal(t.calls.length, 1);
});

test('a repeat of a request in progress is ignored: the answer comes once', async () => {
  let finish: (v: unknown) => void = () => {};
  const t = setup({ slow: () => new Promise((resolve) => (finish = resolve)) });
  t.send('r1', 'slow');
  assert.equal(t.session.isInflight('r1'), true);
  t.send('r1', 'slow');
  await eventually('the request at the transport', () => t.calls.length === 1);
  finish('done');
  await settled(t.sent, 1);
  assert.equal(t.calls.length, 1);
  assert.equal(t.sent.length, 1);
});

test('bus failures reach the device as retryable request codes and are not remembered', async () => {
  const t = setup({ hang: () => new Promise(() => {}) }, undefined, 100);
  t.send('r1', 'hang');
  await settled(t.sent, 1);
  assert.deepEqual(t.sent[0], {
    kind: Kind.Error,
    seq: 1,
    id: 'r1',
    code: 'request.timeout',
    message: ERROR_CODES['request.timeout'],
    fatal: false,
  });
  assert.equal(t.session.answerSeq('r1'), undefined); // the retry runs again
  t.send('r1', 'hang');
  await settled(t.sent, 2);
  assert.equal(t.calls.length, 2);
});

test('a refusal by the transport is passed as it is and remembered', async () => {
  const t = setup({ bad: () => Promise.reject(new GatewayError('request.bad_input', 'No folder.')) });
  t.send('r1', 'bad');
  await settled(t.sent, 1);
  assert.deepEqual(t.sent[0], {
    kind: Kind.Error,
    seq: 1,
    id: 'r1',
    code: 'request.bad_input',
    message: 'No folder.',
    fatal: false,
  });
  assert.equal(t.session.answerSeq('r1'), 1);
});

test('no transport node, or too many requests in flight: request.unavailable at once', async () => {
  const none = setup({}, () => undefined);
  none.send('r1');
  assert.equal((none.sent[0] as { code?: string }).code, 'request.unavailable');
  assert.equal((none.sent[0] as { retryAfterMs?: number }).retryAfterMs, 1000);

  const busy = setup({ hang: () => new Promise(() => {}) });
  for (let i = 0; i < MAX_INFLIGHT_REQUESTS; i++) busy.send(`r${i}`, 'hang');
  assert.equal(busy.sent.length, 0);
  busy.send('one-more', 'hang');
  assert.deepEqual(busy.sent[0], {
    kind: Kind.Error,
    seq: 1,
    id: 'one-more',
    code: 'request.unavailable',
    message: 'Too many requests in progress.',
    fatal: false,
    retryAfterMs: 1000,
  });
});

test('the answer of a session that moved meanwhile follows it to the other edge', async () => {
  let finish: (v: unknown) => void = () => {};
  const t = setup({ slow: () => new Promise((resolve) => (finish = resolve)) });
  const passed: AnswerMessage[] = [];
  t.bus.subscribe(Subjects.device(IMEI), (msg) => {
    passed.push(msg.data as AnswerMessage);
    return { ok: true };
  });
  t.send('r1', 'slow');
  await eventually('the request at the transport', () => t.calls.length === 1);
  t.session.moved = true;
  t.session.ended = true;
  finish({ x: 1 });
  await eventually('the answer passed on', () => passed.length > 0);
  assert.deepEqual(passed[0], { type: 'answer', sessionId: t.session.id, id: 'r1', body: { x: 1 } });
  assert.equal(t.sent.length, 0);
});

test('answers passed on from another edge are sequenced here like local ones', () => {
  const t = setup({});
  t.relay.answerPassedOn(t.session, { type: 'answer', sessionId: t.session.id, id: 'a', body: 7 });
  t.relay.answerPassedOn(t.session, {
    type: 'answer',
    sessionId: t.session.id,
    id: 'b',
    error: { code: 'bus.no_responders', message: 'x', retryable: false },
  });
  t.relay.answerPassedOn(t.session, { type: 'answer', sessionId: t.session.id, id: 'a', body: 8 }); // twice: once
  assert.deepEqual(t.sent, [
    { kind: Kind.Response, seq: 1, id: 'a', body: 7 },
    {
      kind: Kind.Error,
      seq: 2,
      id: 'b',
      code: 'request.unavailable',
      message: ERROR_CODES['request.unavailable'],
      fatal: false,
    },
  ]);
});

test('requestFailure maps bus codes to request codes and keeps device codes', () => {
  assert.deepEqual(requestFailure(new GatewayError('bus.timeout')), {
    code: 'request.timeout',
    message: ERROR_CODES['request.timeout'],
    retryable: true,
  });
  for (const code of ['bus.no_responders', 'bus.closed'] as const) {
    assert.equal(requestFailure(new GatewayError(code)).code, 'request.unavailable');
  }
  assert.deepEqual(requestFailure(new GatewayError('request.unknown_method', 'Nope.')), {
    code: 'request.unknown_method',
    message: 'Nope.',
    retryable: false,
  });
});

test('settled() waits for the requests in progress, so that a drain hands their answers over', async () => {
  let answer!: (v: unknown) => void;
  const { relay, sent, send } = setup({ slow: () => new Promise((r) => (answer = r)) });
  await relay.settled(60_000); // nothing in progress
  send('r1', 'slow');
  let done = false;
  const waiting = relay.settled(60_000).then(() => (done = true));
  await eventually('the transport has the request', () => answer !== undefined);
  assert.equal(done, false);
  answer({ ok: true });
  await waiting;
  assert.equal(sent.length, 1);
  assert.equal(sent[0]?.kind, Kind.Response);
});

test('settled() gives up after its bound when an answer does not come', async () => {
  const { relay, send } = setup({ never: () => new Promise(() => undefined) }, undefined, 1000);
  send('r1', 'never');
  await relay.settled(1);
});

/** A router whose leaves the test announces. */
function leaves() {
  const listeners = new Set<(nodeId: string, left: LeaveFacts) => void>();
  return {
    listeners,
    leave: (nodeId: string, draining = false) => {
      for (const l of listeners) l(nodeId, { draining });
    },
    onLeave: (l: (nodeId: string, left: LeaveFacts) => void) => {
      listeners.add(l);
      return () => listeners.delete(l);
    },
  };
}

test('a transport that leaves the membership: its requests fail at once, retryable', async () => {
  const { listeners, leave, onLeave } = leaves();
  const t = setup({ hang: () => new Promise(() => {}) }, undefined, 30_000, onLeave);
  t.send('r1', 'hang');
  t.send('r2', 'hang');
  await eventually('both at the transport', () => t.calls.length === 2);
  leave('transport-9'); // another node: nothing happens
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(t.sent.length, 0);
  leave(NODE);
  await settled(t.sent, 2);
  for (const f of t.sent) {
    assert.equal(f.kind, Kind.Error);
    assert.equal((f as { code?: string }).code, 'request.unavailable');
    assert.equal((f as { fatal?: boolean }).fatal, false);
  }
  assert.equal(t.session.inflightCount, 0);
  assert.equal(t.session.answerSeq('r1'), undefined, 'not remembered: the retry runs again');
  t.relay.close();
  assert.equal(listeners.size, 0, 'close unsubscribes');
});

test('a transport that drained and left still answers what it was asked: no error', async () => {
  const { leave, onLeave } = leaves();
  let finish: (v: unknown) => void = () => {};
  const t = setup({ slow: () => new Promise((resolve) => (finish = resolve)) }, undefined, 30_000, onLeave);
  t.send('r1', 'slow');
  await eventually('at the transport', () => t.calls.length === 1);
  leave(NODE, true);
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(t.sent.length, 0, 'not failed at the leave');
  finish({ done: true });
  await settled(t.sent, 1);
  assert.deepEqual(t.sent[0], { kind: Kind.Response, seq: 1, id: 'r1', body: { done: true } });
  t.relay.close();
});

test('a drained transport that never answers: its requests fail later, not those after its return', async () => {
  const { leave, onLeave } = leaves();
  const t = setup({ hang: () => new Promise(() => {}) }, undefined, 30_000, onLeave, 50);
  t.send('r1', 'hang');
  await eventually('at the transport', () => t.calls.length === 1);
  leave(NODE, true);
  t.send('r2', 'hang'); // the node is back (same id) and takes a new request
  await settled(t.sent, 1);
  assert.equal((t.sent[0] as { id?: string }).id, 'r1');
  assert.equal((t.sent[0] as { code?: string }).code, 'request.unavailable');
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(t.sent.length, 1, 'the request to the returned node still waits');
  assert.equal(t.session.isInflight('r2'), true);
  t.relay.close();
});

test('nobody listening at the picked node: the request goes to the next pick, no error', async () => {
  const picks = ['transport-gone'];
  const t = setup({ echo: (r) => ({ got: r.body as never }) }, () => picks.shift() ?? NODE);
  t.send('r1');
  await settled(t.sent, 1);
  assert.deepEqual(t.sent[0], { kind: Kind.Response, seq: 1, id: 'r1', body: { got: { n: 1 } } });
  assert.equal(t.calls.length, 1);
  assert.ok((t.calls[0]?.budgetMs ?? 0) <= 30_000);

  // Every pick the same node nobody listens at: a few attempts, then the retryable error.
  const dead = setup({}, () => 'transport-gone');
  dead.send('r2');
  await settled(dead.sent, 1);
  assert.equal((dead.sent[0] as { code?: string }).code, 'request.unavailable');
  assert.equal(dead.session.inflightCount, 0);
});

/**
 * Unit tests of the Handset session state machine, driven with a fake clock
 * and numbered carriers (testing/handset-session-driver.ts, which also checks
 * the machine's invariants on every step). The shell with real carriers is
 * tested in handset.test.ts.
 */

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { SessionDriver } from '../testing/index.ts';
import { GatewayError } from './errors.ts';
import type { HandsetPlugin } from './handset-plugin.ts';
import { backoffDelay } from './backoff.ts';
import { imCompactPlugin } from './im-compact.ts';
import { mailHeadersPlugin } from './mail-headers.ts';
import { type Frame, Kind, type SequencedFrame } from './messages.ts';

const event = (seq: number, name = 'e'): SequencedFrame => ({ kind: Kind.Event, seq, name, body: seq });

/** A driver with a live session on one WebSocket carrier. */
function connected(options: ConstructorParameters<typeof SessionDriver>[0] = {}) {
  const d = new SessionDriver(options);
  const call = d.connect();
  d.receive(d.welcome());
  assert.equal(d.result(call)?.ok, true);
  return d;
}

function codeOf(d: SessionDriver, call: number): string | undefined {
  const r = d.result(call);
  return r === undefined || r.ok ? undefined : r.error.code;
}

describe('HandsetSession: opening', () => {
  test('Hello carries the credentials and the caps of the plugins and compression', () => {
    const d = new SessionDriver({
      client: 'test/1',
      caps: { screenWidth: 128, encodings: ['x'] },
      plugins: [mailHeadersPlugin, imCompactPlugin, imCompactPlugin],
    });
    d.connect();
    assert.equal(d.carriers.length, 1);
    const first = d.newest().first;
    assert.ok(first.kind === Kind.Hello);
    assert.equal(first.secret, 'device-secret');
    assert.equal(first.client, 'test/1');
    assert.deepEqual(first.caps, {
      screenWidth: 128,
      encodings: ['x', 'im.compact'],
      compression: ['deflate'],
    });
    assert.equal(d.newest().kind, 'ws');
  });

  test('without a secret the token goes in Hello, and a Welcome token replaces it', () => {
    const d = new SessionDriver({ secret: undefined, token: 'old', compression: false });
    d.connect();
    const hello = d.newest().first;
    assert.ok(hello.kind === Kind.Hello && hello.token === 'old' && hello.secret === undefined);
    assert.equal(hello.caps, undefined);
    d.receive(d.welcome({ token: 'new' }));
    // The session ends (not resumable): the next carrier says Hello with the new token.
    d.receive({ kind: Kind.Bye, code: 'session.expired', message: '', resumable: false });
    d.fireNext();
    const again = d.newest().first;
    assert.ok(again.kind === Kind.Hello && again.token === 'new');
  });

  test('Welcome resolves connect, says connected, arms the heartbeat and resets the backoff', () => {
    const d = new SessionDriver();
    const call = d.connect();
    assert.equal(d.session.transport, undefined);
    d.receive(d.welcome({ heartbeatMs: 10_000 }));
    assert.equal(d.result(call)?.ok, true);
    assert.deepEqual(d.events('connected'), [{ sessionId: 's1', transport: 'ws', resumed: false, url: '' }]);
    assert.equal(d.session.transport, 'ws');
    assert.equal(d.session.sessionId, 's1');
    assert.equal(d.timers.get('heartbeat'), d.now + 10_000);
    assert.equal(d.timers.has('attempt'), false, 'the handshake timer is gone');
  });

  test('requests and pings made before the Welcome go out on it', () => {
    const d = new SessionDriver();
    const r = d.request('sys.echo', 'early', { id: 'r1' });
    const p = d.ping();
    d.connect();
    assert.deepEqual(d.newest().sent, []);
    d.now += 5;
    d.receive(d.welcome());
    assert.deepEqual(
      d.newest().sent.map((f) => f.kind),
      [Kind.Request, Kind.Ping],
    );
    d.receive({ kind: Kind.Response, seq: 1, id: 'r1', body: 'early' });
    d.now += 7;
    const ping = d.newest().sent[1];
    assert.ok(ping?.kind === Kind.Ping);
    d.receive({ kind: Kind.Pong, nonce: ping.nonce });
    assert.deepEqual(d.result(r), { ok: true, value: 'early' });
    assert.deepEqual(d.result(p), { ok: true, value: 7 }, 'RTT from the injected clock');
  });
});

describe('HandsetSession: sequencing and acks', () => {
  test('delivers each sequenced frame once, in order; a duplicate is dropped but acked again', () => {
    const d = connected({ ackIntervalMs: 1_000 });
    for (const seq of [1, 2, 1, 3, 2]) d.receive(event(seq));
    assert.deepEqual(
      d.events('event').map((e) => e.seq),
      [1, 2, 3],
    );
    assert.equal(d.session.lastSeq, 3);
    d.advance(1_000);
    assert.deepEqual(d.sent(Kind.Ack), [{ kind: Kind.Ack, seq: 3 }]);
    // Only a duplicate now: the gateway still sends it, so ack again.
    d.receive(event(3));
    d.advance(1_000);
    assert.deepEqual(d.sent(Kind.Ack), [
      { kind: Kind.Ack, seq: 3 },
      { kind: Kind.Ack, seq: 3 },
    ]);
    d.advance(10_000);
    assert.equal(d.sent(Kind.Ack).length, 2, 'nothing new, no more acks');
  });

  test('acks at once every 100 frames, else ackIntervalMs after the first unacked one', () => {
    const d = connected({ ackIntervalMs: 40 });
    for (let seq = 1; seq <= 250; seq++) d.receive(event(seq));
    assert.deepEqual(
      d.sent(Kind.Ack).map((f) => (f.kind === Kind.Ack ? f.seq : -1)),
      [100, 200],
    );
    assert.equal(d.timers.get('ack'), d.now + 40);
    d.advance(39);
    assert.equal(d.sent(Kind.Ack).length, 2);
    d.advance(1);
    assert.deepEqual(d.sent(Kind.Ack).at(-1), { kind: Kind.Ack, seq: 250 });
  });

  test('an implicit ack of the carrier (long-poll GET) stands for an Ack', () => {
    const d = connected({ ackIntervalMs: 40 });
    d.receive(event(1));
    d.receive(event(2));
    d.step({ type: 'carrier-acked', carrier: d.newest().id, seq: 2 });
    assert.equal(d.timers.has('ack'), false);
    d.advance(100);
    assert.deepEqual(d.sent(Kind.Ack), []);
    // An ack beyond what was received says nothing.
    d.step({ type: 'carrier-acked', carrier: d.newest().id, seq: 9 });
    d.receive(event(3));
    d.advance(40);
    assert.deepEqual(d.sent(Kind.Ack), [{ kind: Kind.Ack, seq: 3 }]);
  });

  test('answers settle their request; a sequenced Error rejects it; one without id is an error event', () => {
    const d = connected();
    const ok = d.request('a', 1, { id: 'a' });
    const bad = d.request('b', 2, { id: 'b' });
    d.receive({ kind: Kind.Response, seq: 1, id: 'a', body: 'A' });
    d.receive({
      kind: Kind.Error,
      seq: 2,
      id: 'b',
      code: 'request.unknown_method',
      message: 'no',
      fatal: false,
    });
    d.receive({ kind: Kind.Error, seq: 3, code: 'mail.auth_failed', message: 'x', fatal: false });
    assert.deepEqual(d.result(ok), { ok: true, value: 'A' });
    assert.equal(codeOf(d, bad), 'request.unknown_method');
    assert.deepEqual(
      d.events('error').map((e) => e.code),
      ['mail.auth_failed'],
    );
  });
});

describe('HandsetSession: frames that arrive out of order', () => {
  test('frames beyond a gap wait for it: delivered in seq order once it fills, acked only up to it', () => {
    // Long-poll: a POST answer with 4–5 can overtake the GET answer with 2–3.
    const d = connected({ ackIntervalMs: 40 });
    const answer = d.request('m', 1, { id: 'r4' });
    d.receive(event(1));
    d.receive({ kind: Kind.Response, seq: 4, id: 'r4', body: 'four' });
    d.receive(event(5));
    assert.deepEqual(
      d.events('event').map((e) => e.seq),
      [1],
    );
    assert.equal(d.result(answer), undefined, 'the answer waits behind the gap');
    assert.equal(d.session.lastSeq, 1);
    d.advance(40);
    assert.deepEqual(d.sent(Kind.Ack), [{ kind: Kind.Ack, seq: 1 }], 'nothing past the gap is acked');
    d.receive(event(3));
    d.receive(event(2));
    assert.deepEqual(
      d.events('event').map((e) => e.seq),
      [1, 2, 3, 5],
    );
    assert.deepEqual(d.result(answer), { ok: true, value: 'four' });
    assert.equal(d.timers.has('gap'), false);
    d.advance(40);
    assert.deepEqual(d.sent(Kind.Ack).at(-1), { kind: Kind.Ack, seq: 5 });
  });

  test('a frame kept beyond a gap and sent again is not delivered twice', () => {
    const d = connected();
    d.receive(event(3));
    d.receive(event(3));
    d.receive(event(1));
    d.receive(event(2));
    d.receive(event(3));
    assert.deepEqual(
      d.events('event').map((e) => e.seq),
      [1, 2, 3],
    );
  });

  test('a gap that does not fill in time: the session resumes from before it and gets the rest replayed', () => {
    const d = connected();
    d.receive(event(1));
    d.receive(event(3));
    const first = d.newest().id;
    assert.equal(d.timers.get('gap'), d.now + 5000);
    d.advance(5000);
    assert.ok(!d.open.has(first), 'the carrier that skipped seq 2 is given up');
    while (d.newest().id === first) d.fireNext();
    const resume = d.newest().first;
    assert.ok(resume.kind === Kind.Resume);
    assert.equal(resume.lastSeq, 1);
    d.receive(d.welcome({ resumed: true, lastSeq: 3 }));
    d.receive(event(2));
    d.receive(event(3));
    assert.deepEqual(
      d.events('event').map((e) => e.seq),
      [1, 2, 3],
    );
  });
});

describe('HandsetSession: losing and finding the carrier', () => {
  test('2 heartbeats of silence end the carrier; the retry Resumes with lastSeq after a jittered backoff', () => {
    const backoff = { initialMs: 100, maxMs: 1_000, factor: 2, jitter: 0.5 };
    const d = connected({ backoff, random: () => 0.2 });
    d.receive(event(1));
    d.receive(event(2));
    const first = d.newest();
    d.advance(30_000);
    assert.deepEqual(first.sent.at(-1), { kind: Kind.Ping, nonce: 1 });
    d.advance(29_999);
    assert.equal(d.events('disconnected').length, 0, 'less than 2 heartbeats of silence is not enough');
    d.advance(1);
    assert.deepEqual(d.events('disconnected'), [
      { code: 'session.heartbeat_timeout', reason: 'nothing heard for 2× 30000 ms', willReconnect: true },
    ]);
    assert.equal(d.open.has(first.id), false);
    assert.deepEqual(d.events('reconnecting'), [
      {
        attempt: 1,
        delayMs: backoffDelay(0, backoff, () => 0.2),
        transport: 'ws',
        url: '',
        reason: 'nothing heard for 2× 30000 ms',
      },
    ]);
    assert.equal(
      backoffDelay(0, backoff, () => 0.2),
      90,
    );
    d.advance(89);
    assert.equal(d.open.size, 0);
    d.advance(1);
    assert.deepEqual(d.newest().first, {
      kind: Kind.Resume,
      version: 1,
      sessionId: 's1',
      resumeToken: 'rt',
      lastSeq: 2,
    });
  });

  test('anything heard keeps the carrier alive', () => {
    const d = connected();
    for (let i = 0; i < 10; i++) {
      d.advance(30_000);
      d.receive({ kind: Kind.Pong, nonce: 999 });
    }
    assert.equal(d.events('disconnected').length, 0);
    assert.equal(d.sent(Kind.Ping).length, 10);
  });

  test('retries back off exponentially and a Welcome resets the count', () => {
    const backoff = { initialMs: 10, maxMs: 50, factor: 2, jitter: 0 };
    const d = new SessionDriver({ backoff });
    d.connect();
    for (let i = 0; i < 4; i++) {
      d.drop(d.newest().id, { failedToOpen: true });
      d.fireNext();
    }
    assert.deepEqual(
      d.events('reconnecting').map((r) => [r.attempt, r.delayMs]),
      [
        [1, 10],
        [2, 20],
        [3, 40],
        [4, 50],
      ],
    );
    d.receive(d.welcome());
    d.drop();
    assert.deepEqual(d.events('reconnecting').at(-1), {
      attempt: 1,
      delayMs: 10,
      transport: 'ws',
      url: '',
      reason: 'dropped',
    });
  });

  test('a pending request is resent with the same id on the next carrier and settled once', () => {
    const d = connected();
    const call = d.request('test.hold', 'x');
    const [sent] = d.sent(Kind.Request);
    assert.ok(sent?.kind === Kind.Request);
    d.drop();
    d.fireNext();
    d.receive(d.welcome());
    const again = d.newest().sent.filter((f) => f.kind === Kind.Request);
    assert.deepEqual(again, [sent]);
    d.receive({ kind: Kind.Response, seq: 1, id: sent.id, body: 'x' });
    d.receive({ kind: Kind.Response, seq: 2, id: sent.id, body: 'again' });
    assert.deepEqual(d.result(call), { ok: true, value: 'x' });
  });

  test('a failed resume starts a new session at once, numbered from 1 again', () => {
    const d = connected();
    d.receive(event(1));
    d.receive(event(2));
    d.drop();
    d.fireNext();
    assert.equal(d.newest().first.kind, Kind.Resume);
    d.receive({ kind: Kind.Error, code: 'auth.resume_failed', message: 'gone', fatal: true });
    assert.deepEqual(d.events('reconnecting').at(-1)?.delayMs, 0);
    d.fireNext();
    assert.equal(d.newest().first.kind, Kind.Hello);
    d.receive(d.welcome({ sessionId: 's2' }));
    assert.deepEqual(d.events('connected').at(-1), {
      sessionId: 's2',
      transport: 'ws',
      resumed: false,
      url: '',
    });
    assert.equal(d.events('error').length, 0);
    d.receive(event(1, 'fresh'));
    assert.deepEqual(
      d.events('event').map((e) => `${e.seq}${e.name}`),
      ['1e', '2e', '1fresh'],
    );
  });

  test('Bye with reconnectAfterMs waits that long; Bye not resumable says Hello next', () => {
    const d = connected();
    d.receive({
      kind: Kind.Bye,
      code: 'session.draining',
      message: 'draining',
      resumable: true,
      reconnectAfterMs: 15,
    });
    assert.deepEqual(d.events('disconnected'), [
      { code: 'session.draining', reason: 'draining', willReconnect: true },
    ]);
    assert.equal(d.events('reconnecting')[0]?.delayMs, 15);
    d.advance(15);
    assert.equal(d.newest().first.kind, Kind.Resume);
    d.receive(d.welcome());
    d.receive({ kind: Kind.Bye, code: 'session.expired', message: '', resumable: false });
    d.fireNext();
    assert.equal(d.newest().first.kind, Kind.Hello);
  });

  test('after a draining Bye the gateway restarting is tried every second at most, not 4, 8, 16 s apart', () => {
    const d = connected();
    d.receive({
      kind: Kind.Bye,
      code: 'session.draining',
      message: '',
      resumable: true,
      reconnectAfterMs: 100,
    });
    for (let i = 0; i < 6; i++) {
      d.fireNext();
      d.drop(d.newest().id, { failedToOpen: true, reason: 'ECONNREFUSED' });
    }
    const delays = d.events('reconnecting').map((e) => e.delayMs);
    assert.equal(delays[0], 100);
    assert.ok(
      delays.slice(1).every((ms) => ms <= 1_000),
      `retries while the node restarts: ${delays.join(', ')}`,
    );
    d.fireNext();
    assert.equal(d.newest().first.kind, Kind.Resume, 'and the session is resumed, not started anew');
  });
});

describe("HandsetSession: 'auto' and switching carriers", () => {
  test("'auto' falls back to long-poll at once after two WebSocket failures to open", () => {
    const d = new SessionDriver({ transport: 'auto' });
    d.connect();
    d.drop(d.newest().id, { failedToOpen: true });
    d.fireNext();
    assert.equal(d.newest().kind, 'ws');
    d.drop(d.newest().id, { failedToOpen: true });
    assert.deepEqual(d.events('reconnecting').at(-1), {
      attempt: 2,
      delayMs: 0,
      transport: 'poll',
      url: '',
      reason: 'dropped',
    });
    d.fireNext();
    assert.equal(d.newest().kind, 'poll');
    // Long-poll does not reach the gateway either: WebSocket again next.
    d.drop(d.newest().id, { failedToOpen: true });
    assert.equal(d.events('reconnecting').at(-1)?.transport, 'ws');
  });

  test("'auto' falls back when no Welcome comes within fallbackAfterMs", () => {
    const d = new SessionDriver({ transport: 'auto', fallbackAfterMs: 30, requestTimeoutMs: 1_000 });
    d.connect();
    d.advance(29);
    assert.equal(d.carriers.length, 1);
    d.advance(1);
    assert.equal(d.newest().kind, 'poll');
    // A long-poll attempt waits for the longer of the two.
    d.advance(999);
    assert.equal(d.open.size, 1);
    d.advance(1);
    assert.equal(d.open.size, 0);
    assert.deepEqual(d.events('reconnecting').at(-1), {
      attempt: 2,
      delayMs: backoffDelay(1, {}, () => 0.5),
      transport: 'poll',
      url: '',
      reason: 'no Welcome within 30 ms',
    });
  });

  test('switch opens a Resume on the other kind; its Welcome takes over and settles the switch', () => {
    const d = connected();
    d.receive(event(1));
    const old = d.newest();
    const call = d.switchTo('poll');
    const candidate = d.newest();
    assert.equal(candidate.kind, 'poll');
    assert.deepEqual(candidate.first, {
      kind: Kind.Resume,
      version: 1,
      sessionId: 's1',
      resumeToken: 'rt',
      lastSeq: 1,
    });
    // The gateway tells the old carrier first.
    d.receive({ kind: Kind.Bye, code: 'session.moved', message: 'moved', resumable: true }, old.id);
    assert.equal(d.open.has(old.id), false);
    assert.equal(d.events('disconnected').length, 0);
    d.receive(d.welcome({ resumed: true }), candidate.id);
    assert.deepEqual(d.result(call), { ok: true, value: undefined });
    assert.equal(d.session.transport, 'poll');
    assert.deepEqual(d.events('connected').at(-1), {
      sessionId: 's1',
      transport: 'poll',
      resumed: true,
      url: '',
    });
    d.receive(event(1), candidate.id);
    d.receive(event(2), candidate.id);
    assert.deepEqual(
      d.events('event').map((e) => e.seq),
      [1, 2],
    );
  });

  test('the carrier a switch moved to is the live one: its drop is noticed at once', () => {
    const d = connected();
    d.switchTo('poll');
    const moved = d.newest();
    d.receive(d.welcome({ resumed: true }), moved.id);
    d.drop(moved.id);
    assert.deepEqual(d.events('disconnected'), [{ reason: 'dropped', willReconnect: true }]);
    d.fireNext();
    assert.equal(d.newest().kind, 'poll');
    assert.equal(d.newest().first.kind, Kind.Resume);
  });

  test('a failed switch leaves the session where it was, and its mode', () => {
    const d = connected({ transport: 'auto' });
    const old = d.newest();
    const call = d.switchTo('poll');
    d.drop(d.newest().id, { reason: 'HTTP 502' });
    assert.equal(codeOf(d, call), 'request.unavailable');
    assert.equal(d.session.transport, 'ws');
    assert.equal(d.open.has(old.id), true);
    // Back in 'auto': two WebSocket failures still fall back to long-poll.
    d.drop(old.id);
    d.fireNext();
    d.drop(d.newest().id, { failedToOpen: true });
    d.fireNext();
    d.drop(d.newest().id, { failedToOpen: true });
    d.fireNext();
    assert.equal(d.newest().kind, 'poll');
  });

  test('a switch with no Welcome times out', () => {
    const d = connected({ requestTimeoutMs: 500 });
    const call = d.switchTo('poll');
    d.advance(500);
    assert.equal(codeOf(d, call), 'request.timeout');
    assert.equal(d.open.size, 1);
  });

  test('switching while not connected tries that kind at once', () => {
    const d = new SessionDriver({ transport: 'auto', backoff: { initialMs: 10_000, jitter: 0 } });
    d.connect();
    d.drop(d.newest().id, { failedToOpen: false });
    assert.equal(d.open.size, 0);
    const call = d.switchTo('poll');
    assert.equal(d.newest().kind, 'poll');
    assert.equal(d.timers.has('reconnect'), false);
    d.receive(d.welcome());
    assert.deepEqual(d.result(call), { ok: true, value: undefined });
  });
});

describe('HandsetSession: ending', () => {
  test('a refusal no retry fixes rejects everything, reports it and schedules nothing', () => {
    const d = new SessionDriver();
    const connect = d.connect();
    const req = d.request('x');
    const ping = d.ping();
    d.receive({ kind: Kind.Error, code: 'auth.bad_secret', message: 'bad secret', fatal: true });
    assert.equal(d.session.closed, true);
    for (const call of [connect, req, ping]) assert.equal(codeOf(d, call), 'auth.bad_secret');
    assert.deepEqual(
      d.events('error').map((e) => e.code),
      ['auth.bad_secret'],
    );
    assert.deepEqual(d.events('disconnected'), [
      { code: 'auth.bad_secret', reason: 'bad secret', willReconnect: false },
    ]);
    assert.equal(d.events('reconnecting').length, 0);
    assert.equal(d.timers.size, 0);
    assert.equal(codeOf(d, d.request('later')), 'session.closed');
  });

  test('Bye session.replaced stops quietly: no error event, no retry', () => {
    const d = connected();
    const req = d.request('hold');
    d.receive({ kind: Kind.Bye, code: 'session.replaced', message: 'replaced', resumable: false });
    assert.equal(codeOf(d, req), 'session.replaced');
    assert.equal(d.events('error').length, 0);
    assert.deepEqual(d.events('disconnected'), [
      { code: 'session.replaced', reason: 'replaced', willReconnect: false },
    ]);
    assert.equal(d.events('reconnecting').length, 0);
  });

  test('close acks what was received, says Bye, rejects what is pending, and then only settles calls', () => {
    const d = connected({ ackIntervalMs: 60_000 });
    d.receive(event(1));
    const req = d.request('hold');
    const close = d.close();
    assert.deepEqual(d.carriers[0]?.sent.slice(-2), [
      { kind: Kind.Ack, seq: 1 },
      { kind: Kind.Bye, code: 'session.logout', message: 'logout', resumable: false },
    ]);
    assert.equal(codeOf(d, req), 'session.closed');
    assert.deepEqual(d.result(close), { ok: true, value: undefined });
    assert.deepEqual(d.events('disconnected'), [
      { code: 'session.closed', reason: 'closed', willReconnect: false },
    ]);
    assert.equal(d.open.size, 0);
    const before = d.effects.length;
    const again = d.close();
    const ping = d.ping();
    d.step({ type: 'timer', timer: 'heartbeat' });
    assert.deepEqual(
      d.effects.slice(before).map((e) => e.type),
      ['resolve', 'reject'],
    );
    assert.deepEqual(d.result(again), { ok: true, value: undefined });
    assert.equal(codeOf(d, ping), 'session.closed');
  });
});

describe('HandsetSession: requests', () => {
  test('timeouts run on the injected clock; duplicate ids, bad methods and oversized bodies are refused', () => {
    const d = connected({ requestTimeoutMs: 1_000 });
    const slow = d.request('hold', null, { id: 'same' });
    const dup = d.request('hold', null, { id: 'same' });
    assert.equal(codeOf(d, dup), 'request.duplicate');
    const quick = d.request('hold', null, { timeoutMs: 20 });
    d.advance(20);
    assert.equal(codeOf(d, quick), 'request.timeout');
    assert.equal(d.result(slow), undefined);
    d.advance(980);
    assert.equal(codeOf(d, slow), 'request.timeout');
    assert.equal(codeOf(d, d.request('')), 'request.bad_input');
    assert.equal(codeOf(d, d.request('x', new Uint8Array(65 * 1024))), 'protocol.frame_too_large');
    assert.equal(codeOf(d, d.request('x', { f: (() => 1) as never })), 'request.bad_input');
    // A late answer to a request that timed out settles nothing.
    const sent = d.sent(Kind.Request)[0];
    assert.ok(sent?.kind === Kind.Request);
    d.receive({ kind: Kind.Response, seq: 1, id: sent.id });
  });

  test('generated ids share a random prefix and count up', () => {
    const d = connected({ random: () => 0.5 });
    d.request('a');
    d.request('b');
    const ids = d.sent(Kind.Request).map((f) => (f.kind === Kind.Request ? f.id : ''));
    const prefix = Math.floor(0.5 * 36 ** 6).toString(36);
    assert.deepEqual(ids, [`${prefix}.1`, `${prefix}.2`]);
  });
});

describe('HandsetSession: plugins', () => {
  const tag = (label: string): HandsetPlugin => ({
    request: (method, body) =>
      method === 'm'
        ? { body: [body ?? null, label], expandResponse: (answer) => [answer ?? null, `un-${label}`] }
        : undefined,
    expandEvent: (name, body) =>
      name === 'short' ? { name: `long-${label}`, body: [body ?? null, label] } : undefined,
  });

  test('requests are rewritten in plugin order and their answers unwound in reverse', () => {
    const d = connected({ plugins: [tag('a'), tag('b')] });
    const call = d.request('m', 'x', { id: 'r' });
    assert.deepEqual(d.sent(Kind.Request), [
      { kind: Kind.Request, id: 'r', method: 'm', body: [['x', 'a'], 'b'] },
    ]);
    d.receive({ kind: Kind.Response, seq: 1, id: 'r', body: 'answer' });
    assert.deepEqual(d.result(call), { ok: true, value: [['answer', 'un-b'], 'un-a'] });
    const other = d.request('other', 'y', { id: 'o' });
    d.receive({ kind: Kind.Response, seq: 2, id: 'o', body: 'plain' });
    assert.deepEqual(d.result(other), { ok: true, value: 'plain' });
  });

  test('events are expanded by each plugin in turn', () => {
    const d = connected({ plugins: [tag('a'), tag('b')] });
    d.receive({ kind: Kind.Event, seq: 1, name: 'short', body: 1 });
    d.receive({ kind: Kind.Event, seq: 2, name: 'other' });
    assert.deepEqual(d.events('event'), [
      { name: 'long-a', body: [1, 'a'], seq: 1 },
      { name: 'other', seq: 2 },
    ]);
  });

  test('a plugin that throws fails its own request only, and leaves an event as it came', () => {
    const broken: HandsetPlugin = {
      request: (method) => {
        if (method === 'boom') throw new GatewayError('request.bad_input', 'cannot rewrite');
        return method === 'late'
          ? {
              expandResponse: () => {
                throw new Error('cannot read');
              },
            }
          : undefined;
      },
      expandEvent: () => {
        throw new Error('cannot read');
      },
    };
    const d = connected({ plugins: [broken] });
    assert.equal(codeOf(d, d.request('boom')), 'request.bad_input');
    const late = d.request('late', null, { id: 'l' });
    d.receive({ kind: Kind.Response, seq: 1, id: 'l', body: 1 });
    assert.equal(codeOf(d, late), 'internal');
    d.receive({ kind: Kind.Event, seq: 2, name: 'im.m', body: [1] });
    assert.deepEqual(d.events('event'), [{ name: 'im.m', body: [1], seq: 2 }]);
    const fine = d.request('sys.echo', 3, { id: 'f' });
    d.receive({ kind: Kind.Response, seq: 3, id: 'f', body: 3 });
    assert.deepEqual(d.result(fine), { ok: true, value: 3 });
  });

  test('the default plugins: compact mail headers, im.roster rows, the body-less im.send answer, im.m', () => {
    const d = connected({ plugins: [mailHeadersPlugin, imCompactPlugin] });
    const sync = d.request('mail.sync', { account: 'a' }, { id: 's' });
    const roster = d.request('im.roster', { account: 'a' }, { id: 'r' });
    const send = d.request('im.send', { account: 'a', clientId: 'c1', to: 'b@x', body: 'hi' }, { id: 'm' });
    const bodies = d.sent(Kind.Request).map((f: Frame) => (f.kind === Kind.Request ? f.body : undefined));
    assert.deepEqual(bodies, [
      { account: 'a', compact: true },
      { account: 'a', compact: true },
      { account: 'a', clientId: 'c1', to: 'b@x', body: 'hi' },
    ]);
    d.receive({
      kind: Kind.Response,
      seq: 1,
      id: 's',
      body: { columns: ['uid', 'subject'], rows: [[7, 'Hi']] },
    });
    d.receive({
      kind: Kind.Response,
      seq: 2,
      id: 'r',
      body: { rows: [['b@x', null, [], 3, 1, null, null]] },
    });
    d.receive({ kind: Kind.Response, seq: 3, id: 'm' });
    d.receive({
      kind: Kind.Event,
      seq: 4,
      name: 'im.m',
      body: ['a', 'b@x', 'a@x', 'yo', null, null, 1795420800000, 0],
    });
    assert.deepEqual(d.result(sync), { ok: true, value: { items: [{ uid: 7, subject: 'Hi' }] } });
    assert.deepEqual(d.result(roster), {
      ok: true,
      value: { items: [{ jid: 'b@x', groups: [], subscription: 'both', presence: 'available' }] },
    });
    assert.deepEqual(d.result(send), { ok: true, value: { account: 'a', clientId: 'c1' } });
    assert.deepEqual(d.events('event'), [
      {
        name: 'im.message',
        seq: 4,
        body: {
          account: 'a',
          from: 'b@x',
          to: 'a@x',
          body: 'yo',
          at: new Date(1795420800000).toISOString(),
          direction: 'in',
        },
      },
    ]);
  });
});

describe('HandsetSession: several gateway URLs', () => {
  const URLS = ['ws://a.test', 'ws://b.test', 'ws://c.test'];
  const refused = { failedToOpen: true, reason: 'ECONNREFUSED' };

  test('a refusing URL moves the next attempt to the next one; the backoff grows per round', () => {
    const backoff = { initialMs: 100, maxMs: 1_000, factor: 2, jitter: 0 };
    const d = new SessionDriver({ urls: URLS, backoff });
    d.connect();
    for (let i = 0; i < 7; i++) {
      d.drop(d.newest().id, refused);
      d.fireNext();
    }
    assert.deepEqual(
      d.carriers.map((c) => c.url),
      [...URLS, ...URLS, 'ws://a.test', 'ws://b.test'],
    );
    assert.deepEqual(
      d.events('reconnecting').map((r) => [r.url, r.delayMs]),
      [
        ['ws://b.test', 100],
        ['ws://c.test', 100],
        ['ws://a.test', 100],
        ['ws://b.test', 200],
        ['ws://c.test', 200],
        ['ws://a.test', 200],
        ['ws://b.test', 400],
      ],
    );
  });

  test('every delay stays within the jittered bounds of its round and the cap', () => {
    const backoff = { initialMs: 100, maxMs: 1_000, factor: 2, jitter: 0.5 };
    const randoms = [0, 0.999, 0.5, 0.25, 0.75];
    let i = 0;
    const d = new SessionDriver({ urls: URLS.slice(0, 2), backoff, random: () => randoms[i++ % 5]! });
    d.connect();
    for (let n = 0; n < 20; n++) {
      d.drop(d.newest().id, refused);
      d.fireNext();
    }
    d.events('reconnecting').forEach((r, attempt) => {
      const base = Math.min(1_000, 100 * 2 ** Math.floor(attempt / 2));
      assert.ok(
        r.delayMs >= base / 2 && r.delayMs <= base,
        `attempt ${attempt}: ${r.delayMs} outside [${base / 2}, ${base}]`,
      );
    });
  });

  test('a dropped live carrier is retried on its URL first (the last good one), then the others', () => {
    const d = new SessionDriver({ urls: URLS, backoff: { jitter: 0 } });
    d.connect();
    d.drop(d.newest().id, refused);
    d.fireNext();
    d.receive(d.welcome());
    assert.equal(d.session.url, 'ws://b.test');
    assert.equal(d.events('connected').at(-1)?.url, 'ws://b.test');
    d.drop();
    d.fireNext();
    assert.equal(d.newest().url, 'ws://b.test');
    assert.equal(d.newest().first.kind, Kind.Resume);
    d.drop(d.newest().id, refused);
    d.fireNext();
    assert.equal(d.newest().url, 'ws://c.test');
    d.receive(d.welcome());
    assert.equal(d.events('connected').at(-1)?.resumed, true);
    d.drop();
    d.fireNext();
    assert.equal(d.newest().url, 'ws://c.test', 'the newest good URL is preferred');
  });

  test('no Welcome in time, a draining edge or a frozen carrier move on; a busy answer does not', () => {
    const d = new SessionDriver({ urls: URLS, backoff: { jitter: 0 }, requestTimeoutMs: 1_000 });
    d.connect();
    d.advance(5_000); // the handshake deadline of an attempt: max(fallbackAfterMs, requestTimeoutMs)
    assert.equal(d.open.size, 0);
    d.fireNext();
    assert.equal(d.newest().url, 'ws://b.test');
    d.receive(d.welcome());
    d.receive({ kind: Kind.Bye, code: 'session.draining', message: '', resumable: true });
    d.fireNext();
    assert.equal(d.newest().url, 'ws://c.test');
    d.receive({
      kind: Kind.Error,
      code: 'session.busy',
      message: '',
      fatal: true,
      retryAfterMs: 700,
    });
    assert.equal(d.events('reconnecting').at(-1)?.delayMs, 700);
    d.fireNext();
    assert.equal(d.newest().url, 'ws://c.test', 'the edge answered: it is alive');
    d.receive(d.welcome({ heartbeatMs: 1_000 }));
    d.advance(2_000);
    assert.equal(d.events('disconnected').at(-1)?.code, 'session.heartbeat_timeout');
    d.fireNext();
    assert.equal(d.newest().url, 'ws://a.test');
  });

  test('a live carrier whose request timed out moves on; one that dropped does not', () => {
    const d = new SessionDriver({ urls: URLS, transport: 'poll' });
    d.connect();
    d.receive(d.welcome());
    d.drop(d.newest().id, { reason: 'POST failed: ECONNRESET' });
    d.fireNext();
    assert.equal(d.newest().url, 'ws://a.test');
    d.receive(d.welcome());
    d.drop(d.newest().id, { reason: 'POST timed out after 30000 ms', timedOut: true });
    d.fireNext();
    assert.equal(d.newest().url, 'ws://b.test');
  });

  test('switching carriers stays on the URL of the live session', () => {
    const d = new SessionDriver({ urls: URLS, transport: 'auto' });
    d.connect();
    d.drop(d.newest().id, refused);
    d.fireNext();
    d.receive(d.welcome());
    d.switchTo('poll');
    assert.deepEqual([d.newest().kind, d.newest().url], ['poll', 'ws://b.test']);
  });

  test('with one URL a refusal retries it, as before', () => {
    const d = new SessionDriver({ urls: ['ws://only.test'] });
    d.connect();
    d.drop(d.newest().id, refused);
    d.fireNext();
    assert.deepEqual(
      d.carriers.map((c) => c.url),
      ['ws://only.test', 'ws://only.test'],
    );
  });
});

describe('HandsetSession: a frozen carrier', () => {
  test('a Resume answered session.busy for resumeBusyLimitMs in a row gives the session up', () => {
    const d = new SessionDriver({ urls: ['ws://a.test', 'ws://b.test'], resumeBusyLimitMs: 10_000 });
    d.connect();
    d.receive(d.welcome({ heartbeatMs: 1_000 }));
    d.advance(2_000);
    const busy = {
      kind: Kind.Error,
      code: 'session.busy',
      message: 'busy elsewhere',
      fatal: true,
      retryAfterMs: 3_000,
    } as const;
    const firsts: Array<[string, Kind]> = [];
    for (let i = 0; i < 6; i++) {
      d.fireNext();
      firsts.push([d.newest().url, d.newest().first.kind]);
      if (d.newest().first.kind === Kind.Hello) break;
      d.advance(1_000); // the edge waits for the holder before it answers
      d.receive(busy);
    }
    // Busy at 1, 5, 9 and 13 s: the fourth answer is past the limit.
    assert.deepEqual(firsts, [
      ['ws://b.test', Kind.Resume],
      ['ws://b.test', Kind.Resume],
      ['ws://b.test', Kind.Resume],
      ['ws://b.test', Kind.Resume],
      ['ws://b.test', Kind.Hello],
    ]);
    d.receive(d.welcome({ sessionId: 's2' }));
    assert.equal(d.events('connected').at(-1)?.resumed, false);
  });

  test('a Welcome in between starts the busy count again', () => {
    const d = new SessionDriver({ resumeBusyLimitMs: 10_000 });
    d.connect();
    d.receive(d.welcome());
    const busy = {
      kind: Kind.Error,
      code: 'session.busy',
      message: '',
      fatal: true,
      retryAfterMs: 6_000,
    } as const;
    for (let round = 0; round < 3; round++) {
      d.drop();
      d.fireNext();
      d.receive(busy);
      d.fireNext();
      assert.equal(d.newest().first.kind, Kind.Resume);
      d.receive(d.welcome());
    }
  });

  const HEARTBEAT = 10_000;

  test('is noticed exactly 2 heartbeats after the last frame, wherever the silence starts', () => {
    for (const offset of [0, 1, 4_999, 9_999, 10_000, 10_001, 15_000, 19_999]) {
      const d = new SessionDriver({ urls: ['ws://a.test', 'ws://b.test'] });
      d.connect();
      d.receive(d.welcome({ heartbeatMs: HEARTBEAT }));
      // Pings answered until the freeze, which starts `offset` ms into the session.
      let answered = 0;
      while (d.now + 1 <= 1_000_000 + offset) {
        d.advance(1);
        const pings = d.newest().sent.filter((f) => f.kind === Kind.Ping);
        if (pings.length > answered) {
          const ping = pings[answered++];
          if (ping?.kind === Kind.Ping) d.receive({ kind: Kind.Pong, nonce: ping.nonce });
        }
      }
      d.receive(event(1));
      const frozenAt = d.now;
      while (d.events('disconnected').length === 0) assert.ok(d.fireNext(), 'a timer is armed');
      assert.equal(d.now - frozenAt, 2 * HEARTBEAT, `silence from ${offset} ms`);
      assert.equal(d.events('disconnected')[0]?.code, 'session.heartbeat_timeout');
      d.fireNext();
      assert.deepEqual([d.newest().url, d.newest().first.kind], ['ws://b.test', Kind.Resume]);
    }
  });

  test('a live carrier that answers each Ping within a heartbeat is never declared dead', () => {
    const d = new SessionDriver();
    d.connect();
    d.receive(d.welcome({ heartbeatMs: HEARTBEAT }));
    d.advance(HEARTBEAT);
    for (let n = 0; n < 20; n++) {
      const ping = d.newest().sent.at(-1);
      assert.equal(ping?.kind, Kind.Ping);
      d.advance(HEARTBEAT - 1); // the slowest answer: just before the next Ping is due
      if (ping?.kind === Kind.Ping) d.receive({ kind: Kind.Pong, nonce: ping.nonce });
      d.advance(1);
    }
    assert.equal(d.events('disconnected').length, 0);
  });

  test('a heartbeat that is not a positive number turns the heartbeat off', () => {
    for (const heartbeatMs of [0, -5, Number.NaN, Number.POSITIVE_INFINITY]) {
      const d = new SessionDriver();
      d.connect();
      d.receive(d.welcome({ heartbeatMs }));
      assert.equal(d.timers.has('heartbeat'), false, String(heartbeatMs));
    }
  });
});

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { GatewayError } from '../errors.ts';
import type { HandsetPlugin } from '../handset-plugin.ts';
import type { SessionEffect, SessionInput } from '../handset-types.ts';
import { type Frame, Kind, type Welcome } from '../messages.ts';
import { CallBook } from './calls.ts';
import { SessionEffects } from './effects.ts';

type RequestInput = Extract<SessionInput, { type: 'request' }>;

function setup(plugins: HandsetPlugin[] = []) {
  const fx = new SessionEffects();
  const clock = { now: 1_000 };
  const book = new CallBook(
    fx,
    () => clock.now,
    () => 0.5,
    plugins,
  );
  const out: SessionEffect[] = fx.begin();
  const request = (call: number, method: string, extra: Partial<RequestInput> = {}) =>
    book.request({ type: 'request', call, method, ...extra }, undefined, 30_000);
  const settled = () =>
    out.flatMap((e) =>
      e.type === 'resolve' ? [[e.call, 'ok', e.value]] : e.type === 'reject' ? [[e.call, e.error.code]] : [],
    );
  return { fx, clock, book, out, request, settled };
}

describe('CallBook', () => {
  test('requests get unique ids of this instance and a timeout timer', () => {
    const { book, out, request } = setup();
    const a = request(1, 'sys.echo');
    const b = request(2, 'sys.echo', { timeoutMs: 5 });
    assert.ok(a && b);
    assert.notEqual(a.id, b.id);
    assert.match(a.id, /^[0-9a-z]{6}\.1$/);
    assert.equal(book.hasRequest(a.id), true);
    assert.deepEqual(
      out.filter((e) => e.type === 'schedule'),
      [
        { type: 'schedule', timer: 1, at: 31_000 },
        { type: 'schedule', timer: 2, at: 1_005 },
      ],
    );
  });

  test('a request without a method, with a pending id, or too large is rejected and not booked', () => {
    const { book, request, settled } = setup();
    assert.equal(request(1, ''), undefined);
    request(2, 'm', { id: 'x' });
    assert.equal(request(3, 'm', { id: 'x' }), undefined);
    assert.equal(
      book.request({ type: 'request', call: 4, method: 'm', body: 'y'.repeat(200) }, 64, 1),
      undefined,
    );
    assert.deepEqual(settled(), [
      [1, 'request.bad_input'],
      [3, 'request.duplicate'],
      [4, 'protocol.frame_too_large'],
    ]);
  });

  test("the plugins' rewrite goes on the wire and their way back settles the answer", () => {
    const plugin: HandsetPlugin = {
      request: (_m, body) => ({ body: { wrapped: body ?? null }, expandResponse: (a) => [a ?? null] }),
    };
    const { book, request, settled } = setup([plugin]);
    const frame = request(1, 'm', { id: 'r', body: 'b' });
    assert.deepEqual(frame?.body, { wrapped: 'b' });
    book.answer('r', 'a');
    book.answer('r', 'again');
    assert.deepEqual(settled(), [[1, 'ok', ['a']]]);
    assert.equal(book.hasRequest('r'), false);
  });

  test('a timeout rejects once; a late answer settles nothing', () => {
    const { book, request, settled } = setup();
    request(1, 'mail.sync', { id: 'r' });
    book.timeout(1);
    book.timeout(1);
    book.answer('r', 'late');
    assert.deepEqual(settled(), [[1, 'request.timeout']]);
  });

  test('a Pong settles its ping with the RTT only after the Ping went out', () => {
    const { book, clock, settled } = setup();
    const nonce = book.addPing(1, 9_999);
    book.pong(nonce, clock.now);
    assert.deepEqual(settled(), []);
    const sent: Frame[] = [];
    book.resend(1_000, (f) => sent.push(f));
    assert.deepEqual(sent, [{ kind: Kind.Ping, nonce }]);
    book.pong(nonce, 1_250);
    assert.deepEqual(settled(), [[1, 'ok', 250]]);
  });

  test('resend sends pending requests before pings, with the same ids', () => {
    const { book, request } = setup();
    book.addPing(1, 9_999);
    const r = request(2, 'm');
    const sent: Frame[] = [];
    book.resend(0, (f) => sent.push(f));
    assert.deepEqual(
      sent.map((f) => f.kind),
      [Kind.Request, Kind.Ping],
    );
    assert.equal(sent[0], r);
  });

  test('connect calls settle with the first Welcome, later ones at once', () => {
    const { book, settled } = setup();
    const welcome = { kind: Kind.Welcome, sessionId: 's' } as Welcome;
    book.connect(1);
    book.connect(2);
    assert.deepEqual(settled(), []);
    book.settleConnect(welcome);
    book.connect(3);
    assert.deepEqual(settled(), [
      [1, 'ok', welcome],
      [2, 'ok', welcome],
      [3, 'ok', welcome],
    ]);
  });

  test('rejectAll rejects connect calls, cancels every timeout, then rejects every call once', () => {
    const { book, out, request } = setup();
    book.connect(1);
    request(2, 'm');
    book.addPing(3, 9_999);
    out.length = 0;
    book.rejectAll(new GatewayError('session.closed', 'closed'));
    book.rejectAll(new GatewayError('session.closed', 'closed'));
    assert.deepEqual(
      out.map((e) => `${e.type}:${'call' in e ? e.call : 'timer' in e ? e.timer : ''}`),
      ['reject:1', 'cancel:2', 'cancel:3', 'reject:2', 'reject:3'],
    );
  });

  test('an unsequenced refusal rejects its request; an unknown id is left alone', () => {
    const { book, request, settled } = setup();
    request(1, 'm', { id: 'r' });
    assert.equal(book.refuse('nope', new GatewayError('request.bad_input', 'x')), false);
    assert.equal(book.refuse('r', new GatewayError('request.bad_input', 'x')), true);
    assert.deepEqual(settled(), [[1, 'request.bad_input']]);
  });
});

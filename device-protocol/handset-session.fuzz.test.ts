/**
 * Property-based tests of the Handset session state machine: random
 * sequences of application calls, gateway frames (in order, replayed, with
 * gaps, on stale carriers), carrier closes and clock ticks. The driver
 * (testing/handset-session-driver.ts) checks the machine's invariants on
 * every step: no sequenced frame delivered twice or out of order, acks never
 * backwards, every call settled exactly once, nothing but cleanup after close
 * and nothing left running. Each run ends with close(); the same inputs give
 * the same effects (the machine reads nothing but its inputs, its clock and
 * its random source). Set FUZZ_RUNS for a longer session; FUZZ_SEED and
 * FUZZ_PATH (from a failure's report) replay a failing run.
 */

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { SessionDriver } from '../testing/index.ts';
import type { CarrierKind } from './carriers/carrier.ts';
import { GatewayError } from './errors.ts';
import type { HandsetSessionOptions, SessionEffect } from './handset-types.ts';
import { imCompactPlugin } from './im-compact.ts';
import { mailHeadersPlugin } from './mail-headers.ts';
import { type Frame, Kind, type Value } from './messages.ts';

const RUNS = Number(process.env.FUZZ_RUNS ?? 1000);
/** A failure's seed and path, to replay it. */
const REPLAY =
  process.env.FUZZ_SEED === undefined
    ? {}
    : {
        seed: Number(process.env.FUZZ_SEED),
        ...(process.env.FUZZ_PATH === undefined ? {} : { path: process.env.FUZZ_PATH }),
      };

/** A few ids, so that answers often match a pending request and duplicates happen. */
const idArb = fc.constantFrom('r0', 'r1', 'r2', 'r3');
const sessionArb = fc.constantFrom('s1', 's2');
/** Which open carrier a frame or a close goes to (modulo how many are open), or a stale one. */
const targetArb = fc.oneof({ weight: 6, arbitrary: fc.nat(3) }, { weight: 1, arbitrary: fc.constant(-1) });
/** Seq relative to what the machine has seen: replays, the next one, gaps. */
const seqArb = fc.integer({ min: -3, max: 3 });
const errorCodeArb = fc.constantFrom(
  'auth.bad_secret',
  'auth.resume_failed',
  'auth.rate_limited',
  'session.rate_limited',
  'session.backpressure',
  'request.duplicate',
  'request.timeout',
);
const byeCodeArb = fc.constantFrom(
  'session.moved',
  'session.replaced',
  'session.draining',
  'session.expired',
  'auth.disabled',
);

type Command =
  | { op: 'connect' }
  | { op: 'request'; id: string | undefined; method: string; timeoutMs: number | undefined }
  | { op: 'ping' }
  | { op: 'switch'; kind: CarrierKind }
  | { op: 'welcome'; to: number; session: string; resumed: boolean; heartbeatMs: number }
  | { op: 'event'; to: number; seq: number; name: string }
  | { op: 'response'; to: number; seq: number; id: string; body: Value | undefined }
  | { op: 'error'; to: number; seq: number | undefined; id: string | undefined; code: string; fatal: boolean }
  | { op: 'bye'; to: number; code: string; resumable: boolean; after: number | undefined }
  | { op: 'ping-frame'; to: number }
  | { op: 'pong'; to: number; nonce: number }
  | { op: 'drop'; to: number; failedToOpen: boolean; invalid: boolean }
  | { op: 'acked'; to: number; seq: number }
  | { op: 'advance'; ms: number }
  | { op: 'fire' };

const commandArb: fc.Arbitrary<Command> = fc.oneof(
  { arbitrary: fc.constant({ op: 'connect' as const }), weight: 2 },
  {
    arbitrary: fc.record({
      op: fc.constant('request' as const),
      id: fc.option(idArb, { nil: undefined }),
      method: fc.constantFrom('sys.echo', 'mail.sync', 'im.roster', 'im.send'),
      timeoutMs: fc.option(fc.integer({ min: 0, max: 60_000 }), { nil: undefined }),
    }),
    weight: 4,
  },
  { arbitrary: fc.constant({ op: 'ping' as const }), weight: 1 },
  {
    arbitrary: fc.record({ op: fc.constant('switch' as const), kind: fc.constantFrom('ws', 'poll') }),
    weight: 1,
  },
  {
    arbitrary: fc.record({
      op: fc.constant('welcome' as const),
      to: targetArb,
      session: sessionArb,
      resumed: fc.boolean(),
      heartbeatMs: fc.constantFrom(0, 1_000, 30_000),
    }),
    weight: 4,
  },
  {
    arbitrary: fc.record({
      op: fc.constant('event' as const),
      to: targetArb,
      seq: seqArb,
      name: fc.constantFrom('e', 'im.m'),
    }),
    weight: 6,
  },
  {
    arbitrary: fc.record({
      op: fc.constant('response' as const),
      to: targetArb,
      seq: seqArb,
      id: idArb,
      body: fc.constantFrom<Value | undefined>(undefined, null, 'x', { rows: [], columns: [] }),
    }),
    weight: 5,
  },
  {
    arbitrary: fc.record({
      op: fc.constant('error' as const),
      to: targetArb,
      seq: fc.option(seqArb, { nil: undefined }),
      id: fc.option(idArb, { nil: undefined }),
      code: errorCodeArb,
      fatal: fc.boolean(),
    }),
    weight: 2,
  },
  {
    arbitrary: fc.record({
      op: fc.constant('bye' as const),
      to: targetArb,
      code: byeCodeArb,
      resumable: fc.boolean(),
      after: fc.option(fc.integer({ min: 0, max: 5_000 }), { nil: undefined }),
    }),
    weight: 1,
  },
  { arbitrary: fc.record({ op: fc.constant('ping-frame' as const), to: targetArb }), weight: 1 },
  {
    arbitrary: fc.record({
      op: fc.constant('pong' as const),
      to: targetArb,
      nonce: fc.integer({ min: 1, max: 6 }),
    }),
    weight: 1,
  },
  {
    arbitrary: fc.record({
      op: fc.constant('drop' as const),
      to: targetArb,
      failedToOpen: fc.boolean(),
      // Rarely: a carrier that cannot even be built (a bad URL) ends the handset.
      invalid: fc.nat(99).map((n) => n === 0),
    }),
    weight: 3,
  },
  {
    arbitrary: fc.record({ op: fc.constant('acked' as const), to: targetArb, seq: seqArb }),
    weight: 1,
  },
  {
    arbitrary: fc.record({ op: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 40_000 }) }),
    weight: 4,
  },
  { arbitrary: fc.constant({ op: 'fire' as const }), weight: 4 },
);

const optionsArb: fc.Arbitrary<Partial<HandsetSessionOptions>> = fc.record({
  transport: fc.constantFrom('ws', 'poll', 'auto') as fc.Arbitrary<'ws' | 'poll' | 'auto'>,
  ackIntervalMs: fc.constantFrom(0, 50, 1_000),
  requestTimeoutMs: fc.constantFrom(1_000, 30_000),
  fallbackAfterMs: fc.constantFrom(100, 5_000),
  random: fc.double({ min: 0, max: 0.999, noNaN: true }).map((r) => () => r),
  plugins: fc.constantFrom([], [mailHeadersPlugin, imCompactPlugin]),
  urls: fc.constantFrom(['ws://a.test'], ['ws://a.test', 'ws://b.test', 'ws://c.test']),
});

/** The carrier a frame goes to: one of the open ones, or one that is gone. */
function carrierFor(d: SessionDriver, to: number): number | undefined {
  const open = [...d.open.keys()];
  if (to < 0) return d.carriers.find((c) => !d.open.has(c.id))?.id;
  return open.length === 0 ? undefined : open[to % open.length];
}

function run(d: SessionDriver, cmd: Command): void {
  const seqOf = (rel: number) => Math.max(1, d.session.lastSeq + rel);
  const send = (to: number, frame: Frame) => {
    const carrier = carrierFor(d, to);
    if (carrier !== undefined) d.receive(frame, carrier);
  };
  switch (cmd.op) {
    case 'connect':
      d.connect();
      return;
    case 'request':
      d.request(cmd.method, { account: 'a', clientId: 'c' }, { id: cmd.id, timeoutMs: cmd.timeoutMs });
      return;
    case 'ping':
      d.ping();
      return;
    case 'switch':
      d.switchTo(cmd.kind);
      return;
    case 'welcome': {
      const carrier = carrierFor(d, cmd.to);
      if (carrier === undefined) return;
      const first = d.carriers.find((c) => c.id === carrier)?.first;
      const sessionId = cmd.resumed && first?.kind === Kind.Resume ? first.sessionId : cmd.session;
      d.receive(
        d.welcome({ sessionId, resumed: cmd.resumed, heartbeatMs: cmd.heartbeatMs }, carrier),
        carrier,
      );
      return;
    }
    case 'event':
      send(cmd.to, { kind: Kind.Event, seq: seqOf(cmd.seq), name: cmd.name, body: [1, 'x'] });
      return;
    case 'response': {
      const frame: Frame = { kind: Kind.Response, seq: seqOf(cmd.seq), id: cmd.id };
      if (cmd.body !== undefined) frame.body = cmd.body;
      send(cmd.to, frame);
      return;
    }
    case 'error': {
      const frame: Frame = { kind: Kind.Error, code: cmd.code, message: '', fatal: cmd.fatal };
      if (cmd.seq !== undefined && cmd.id !== undefined) frame.seq = seqOf(cmd.seq);
      if (cmd.id !== undefined) frame.id = cmd.id;
      send(cmd.to, frame);
      return;
    }
    case 'bye': {
      const frame: Frame = { kind: Kind.Bye, code: cmd.code, message: '', resumable: cmd.resumable };
      if (cmd.after !== undefined) frame.reconnectAfterMs = cmd.after;
      send(cmd.to, frame);
      return;
    }
    case 'ping-frame':
      send(cmd.to, { kind: Kind.Ping, nonce: 42 });
      return;
    case 'pong':
      send(cmd.to, { kind: Kind.Pong, nonce: cmd.nonce });
      return;
    case 'drop': {
      const carrier = carrierFor(d, cmd.to);
      if (carrier === undefined || !d.open.has(carrier)) return;
      const info = { reason: 'dropped', failedToOpen: cmd.failedToOpen };
      d.drop(carrier, cmd.invalid ? { ...info, error: new GatewayError('config.invalid', 'bad url') } : info);
      return;
    }
    case 'acked': {
      const carrier = carrierFor(d, cmd.to);
      if (carrier !== undefined) d.step({ type: 'carrier-acked', carrier, seq: seqOf(cmd.seq) });
      return;
    }
    case 'advance':
      d.advance(cmd.ms);
      return;
    case 'fire':
      d.fireNext();
      return;
  }
}

/** The effects as plain data, to compare two runs. */
function trace(effects: SessionEffect[]): string {
  return JSON.stringify(effects, (_key, v) =>
    v instanceof Error ? `${v.name}:${(v as { code?: string }).code}:${v.message}` : v,
  );
}

/** A run: the handset's settings, whether it connects first, what happens, and where close() comes (if before the end). */
const runArb = fc.record({
  options: optionsArb,
  connectFirst: fc.oneof(
    { weight: 9, arbitrary: fc.constant(true) },
    { weight: 1, arbitrary: fc.constant(false) },
  ),
  commands: fc.array(commandArb, { maxLength: 100, size: 'max' }),
  closeAt: fc.option(fc.nat(100), { nil: undefined }),
});

describe('fuzz: the Handset session state machine', () => {
  test('random calls, frames, closes and ticks keep every invariant, and close leaves nothing', () => {
    fc.assert(
      fc.property(runArb, ({ options, connectFirst, commands, closeAt }) => {
        const d = new SessionDriver(options);
        if (connectFirst) d.connect();
        commands.forEach((cmd, i) => {
          if (i === closeAt) d.close();
          run(d, cmd);
        });
        const close = d.close();
        assert.ok(d.result(close)?.ok);
        assert.equal(d.session.closed, true);
        assert.deepEqual(d.unsettled(), []);
        // Nothing more can happen: the clock moves, a stale carrier speaks.
        const before = d.effects.length;
        d.advance(120_000);
        for (const c of d.carriers)
          d.step({ type: 'frame', carrier: c.id, frame: { kind: Kind.Ping, nonce: 1 } });
        assert.equal(d.effects.length, before);
      }),
      { numRuns: RUNS, ...REPLAY },
    );
  });

  test('the same inputs give the same effects', () => {
    fc.assert(
      fc.property(runArb, ({ options, commands }) => {
        const a = new SessionDriver(options);
        const b = new SessionDriver(options);
        a.connect();
        b.connect();
        for (const cmd of commands) {
          run(a, cmd);
          run(b, cmd);
        }
        assert.equal(trace(a.effects), trace(b.effects));
      }),
      { numRuns: Math.ceil(RUNS / 4) },
    );
  });
});

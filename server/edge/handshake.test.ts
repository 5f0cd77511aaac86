import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pino } from 'pino';
import { decodeFrame } from '../../device-protocol/codec.ts';
import { DEFLATE } from '../../device-protocol/compression.ts';
import { ERROR_CODES, GatewayError } from '../../device-protocol/errors.ts';
import { type Capabilities, type Frame, Kind, PROTOCOL_VERSION } from '../../device-protocol/messages.ts';
import type { DeviceInfo } from '../bus/bus.ts';
import type { Recorder } from '../records/types.ts';
import { AuthLimiter } from './auth-limiter.ts';
import { DeviceTokens } from './auth.ts';
import { ACTIVE, CLOSED, type Carrier, WsCarrier } from './carriers.ts';
import { DeviceSession } from './device-session.ts';
import type { WsDriver } from './engines/engine.ts';
import { Handshake, type HandshakeHost, type SessionFinder } from './handshake.ts';
import { DEFAULT_EDGE_LIMITS } from './limits.ts';
import { EdgeStats } from './metrics.ts';
import { SessionRecords } from './session-records.ts';
import { SessionTable } from './session-table.ts';

const IMEI = '356938035643809';
const NOW = 1_700_000_000_000;

/**
 * A handshake with fakes around it: a directory that knows IMEI with the
 * secret "right", a finder whose resume answer each test sets, and a host that
 * writes down what it was asked. Carriers are real WebSocket carriers over a
 * driver that keeps what was sent.
 */
function setup() {
  const calls: string[] = [];
  const stats = new EdgeStats();
  const records: string[] = [];
  const recorder: Recorder = {
    log: (r) => records.push(`${r.kind}${r.code === undefined ? '' : ` ${r.code}`}`),
    usage: (u) => records.push(`usage${u.logins ? ' login' : ''}`),
    flush: async () => {},
    close: async () => {},
  };
  const table = new SessionTable();
  /** Operator log lines as [level, msg]. */
  const logLines: [number, string][] = [];
  const logger = pino(
    { level: 'debug' },
    {
      write: (line: string) => {
        const o = JSON.parse(line) as { level: number; msg: string };
        logLines.push([o.level, o.msg]);
      },
    },
  );
  const host: HandshakeHost & { draining: boolean } = {
    draining: false,
    closed: false,
    table,
    addSession(s) {
      calls.push('add');
      table.add(s);
    },
    endSession(s, code) {
      calls.push(`end ${s.id} ${code}`);
      s.ended = true;
      table.remove(s);
    },
    fatal(c, code, message, retryAfterMs) {
      calls.push(`fatal ${code}: ${message}${retryAfterMs === undefined ? '' : ` (${retryAfterMs} ms)`}`);
      c.state = CLOSED;
    },
    drainingBye: () => calls.push('draining bye'),
    attaching: () => calls.push('attaching'),
    welcomed: () => calls.push('welcomed'),
  };
  const info: DeviceInfo = { imei: IMEI, operator: 'op', status: 'enabled', keyEpoch: 'k1' };
  let resumeWith: () => Promise<DeviceSession> = () => Promise.reject(new GatewayError('auth.resume_failed'));
  const finder: SessionFinder = {
    findForResume: () => resumeWith(),
    takeoverElsewhere: async (imei) => {
      calls.push(`takeover ${imei}`);
    },
  };
  const handshake = new Handshake(host, {
    directory: {
      authenticate: async (imei, secret) => {
        if (imei !== IMEI) throw new GatewayError('auth.unknown_device');
        if (secret !== 'right') throw new GatewayError('auth.bad_secret');
        return info;
      },
      lookup: async () => info,
    },
    tokens: new DeviceTokens('a-secret-of-16-chars', 3600, () => NOW),
    authLimiter: new AuthLimiter(),
    finder,
    records: new SessionRecords(recorder, () => NOW),
    stats,
    logger,
    now: () => NOW,
    heartbeatMs: 30_000,
    resumeWindowMs: 120_000,
    maxFrameBytes: 65_536,
    compression: true,
  });
  const sent = new Map<unknown, Uint8Array[]>();
  const driver = {
    send: (socket: unknown, bytes: Uint8Array) => sent.get(socket)?.push(bytes),
    sendMany: () => {},
    bufferedAmount: () => 0,
    end: () => {},
    terminate: () => {},
    armDrain: () => {},
  } satisfies WsDriver;
  const carrier = (address = '10.0.0.1'): WsCarrier => {
    const c = new WsCarrier(
      {
        limits: DEFAULT_EDGE_LIMITS,
        stats,
        wsDriver: driver,
        now: () => NOW,
        backpressure() {},
        schedulePollFlush() {},
        scheduleWsFlush() {},
        pollTombstone() {},
      },
      address,
    );
    c.socket = {};
    sent.set(c.socket, []);
    return c;
  };
  const framesOf = (c: Carrier) => sent.get((c as WsCarrier).socket) ?? [];
  const welcomeOf = (c: Carrier): Extract<Frame, { kind: Kind.Welcome }> => {
    const first = framesOf(c)[0];
    assert.ok(first !== undefined, 'nothing was sent');
    const d = decodeFrame(first);
    assert.ok(d.ok && d.frame.kind === Kind.Welcome, 'the first frame is not Welcome');
    return d.frame;
  };
  return {
    host,
    handshake,
    calls,
    records,
    logLines,
    stats,
    table,
    carrier,
    framesOf,
    welcomeOf,
    resumeWith: (f: () => Promise<DeviceSession>) => {
      resumeWith = f;
    },
  };
}

const hello = (secret = 'right', caps?: Capabilities) => ({
  kind: Kind.Hello as const,
  version: PROTOCOL_VERSION,
  imei: IMEI,
  secret,
  ...(caps === undefined ? {} : { caps }),
});

test('Hello: a new session, taken over elsewhere, recorded, welcomed', async () => {
  const t = setup();
  const c = t.carrier();
  await t.handshake.hello(c, hello());
  const s = t.table.get(IMEI);
  assert.ok(s !== undefined);
  assert.equal(s.operator, 'op');
  assert.equal(s.keyEpoch, 'k1');
  assert.equal(c.session, s);
  assert.equal(s.carrier, c);
  assert.equal(c.state, ACTIVE);
  assert.deepEqual(t.calls, [`takeover ${IMEI}`, 'add', 'attaching', 'welcomed']);
  assert.deepEqual(t.records, ['connect', 'usage login']);
  const w = t.welcomeOf(c);
  assert.equal(w.sessionId, s.id);
  assert.equal(w.resumeToken, s.resumeToken);
  assert.equal(w.resumed, false);
  assert.equal(w.lastSeq, 0);
  assert.equal(w.heartbeatMs, 30_000);
  assert.equal(w.resumeWindowMs, 120_000);
  assert.equal(w.maxFrameBytes, 65_536);
  assert.equal(w.serverTime, NOW);
  assert.equal(w.tokenExpiresAt, NOW + 3600_000);
  assert.equal(w.compression, undefined);
  assert.equal(c.compression, undefined);
});

test('Hello: a session of the device here is replaced without asking other edges', async () => {
  const t = setup();
  const old = new DeviceSession(`${IMEI}.old`, IMEI, 't');
  t.table.add(old);
  await t.handshake.hello(t.carrier(), hello());
  assert.deepEqual(t.calls.slice(0, 2), [`end ${old.id} session.replaced`, 'add']);
  assert.notEqual(t.table.get(IMEI), old);
});

test('Hello: a device that asks for compression gets it on a WebSocket', async () => {
  const t = setup();
  const c = t.carrier();
  await t.handshake.hello(c, hello('right', { compression: [DEFLATE] }));
  assert.equal(t.welcomeOf(c).compression, DEFLATE);
  assert.ok(c.compression !== undefined);
});

test('Hello: refusals are fatal, counted, recorded (sampled), and rate limited per (address, device)', async () => {
  const t = setup();
  await t.handshake.hello(t.carrier(), hello('wrong'));
  assert.deepEqual(t.calls, ['fatal auth.bad_secret: The device secret is wrong.']);
  assert.deepEqual(t.records, ['auth_failure auth.bad_secret']);
  assert.equal(t.stats.authFailures.get('auth.bad_secret'), 1);
  for (let i = 1; i < 10; i++) await t.handshake.hello(t.carrier(), hello('wrong'));
  assert.equal(t.stats.authFailures.get('auth.bad_secret'), 10);
  assert.deepEqual(t.records, ['auth_failure auth.bad_secret'], 'one record a minute for the device');
  const refused = t.logLines.filter(([, msg]) => msg === 'device refused').map(([level]) => level);
  assert.deepEqual(refused, [30, 20, 20, 20, 20, 20, 20, 20, 20, 20], 'info as recorded, the rest at debug');
  t.calls.length = 0;
  // The bucket of this address and device is empty: even the right secret waits here…
  await t.handshake.hello(t.carrier(), hello('right'));
  assert.match(t.calls[0] ?? '', /^fatal auth\.rate_limited: .* \(\d+ ms\)$/);
  assert.equal(t.table.get(IMEI), undefined);
  // …but not from another address.
  const elsewhere = t.carrier('10.0.0.2');
  await t.handshake.hello(elsewhere, hello('right'));
  assert.equal(elsewhere.state, ACTIVE);
});

test('Hello with a valid token passes a spent bucket; a forged one meets it', async () => {
  const t = setup();
  for (let i = 0; i < 10; i++) await t.handshake.hello(t.carrier(), hello('wrong'));
  const { token } = new DeviceTokens('a-secret-of-16-chars', 3600, () => NOW).issue(IMEI, `${IMEI}.x`, 'k1');
  const c = t.carrier();
  await t.handshake.hello(c, { kind: Kind.Hello, version: PROTOCOL_VERSION, imei: IMEI, token });
  assert.equal(c.state, ACTIVE, 'a valid token is never refused because of failures from its address');
  t.calls.length = 0;
  const forged = new DeviceTokens('another-secret-16chars', 3600, () => NOW).issue(IMEI, `${IMEI}.x`).token;
  await t.handshake.hello(t.carrier(), {
    kind: Kind.Hello,
    version: PROTOCOL_VERSION,
    imei: IMEI,
    token: forged,
  });
  assert.match(t.calls[0] ?? '', /^fatal auth\.rate_limited/);
});

test('Hello: another protocol version, or a draining edge, gets no session', async () => {
  const t = setup();
  await t.handshake.hello(t.carrier(), { ...hello(), version: PROTOCOL_VERSION + 1 });
  assert.match(t.calls[0] ?? '', /^fatal protocol\.unsupported_version/);
  t.host.draining = true;
  t.calls.length = 0;
  await t.handshake.hello(t.carrier(), hello());
  assert.deepEqual(t.calls, ['draining bye']);
  assert.equal(t.table.size, 0);
});

/** A session here with three sequenced frames, last carried by long-poll. */
function heldSession(t: ReturnType<typeof setup>): DeviceSession {
  const s = new DeviceSession(`${IMEI}.abc`, IMEI, 'resume-token');
  for (const b of [1, 2, 3]) s.append(new Uint8Array([b]));
  s.via = 'poll';
  t.table.add(s);
  return s;
}

const resume = (s: DeviceSession, lastSeq: number) => ({
  kind: Kind.Resume as const,
  version: PROTOCOL_VERSION,
  sessionId: s.id,
  resumeToken: s.resumeToken,
  lastSeq,
});

test('Resume: acks up to lastSeq, welcomes, replays the rest, records the carrier switch', async () => {
  const t = setup();
  const s = heldSession(t);
  t.resumeWith(async () => s);
  const c = t.carrier();
  await t.handshake.resume(c, resume(s, 1));
  const w = t.welcomeOf(c);
  assert.equal(w.resumed, true);
  assert.equal(w.lastSeq, 3);
  assert.deepEqual(t.framesOf(c).slice(1), [new Uint8Array([2]), new Uint8Array([3])]);
  assert.equal(s.ackedSeq, 1);
  assert.equal(s.via, 'ws');
  assert.equal(t.stats.resumes, 1);
  assert.deepEqual(t.records, ['resume', 'carrier_switch']);
  assert.deepEqual(t.calls, ['attaching', 'welcomed']);
});

test('Resume: a lastSeq outside what the session holds is refused', async () => {
  const t = setup();
  const s = heldSession(t);
  t.resumeWith(async () => s);
  await t.handshake.resume(t.carrier(), resume(s, 9));
  assert.deepEqual(t.calls, [
    'fatal auth.resume_failed: lastSeq 9 is outside what this session holds (0..3).',
  ]);
  assert.equal(s.carrier, undefined);
});

test('Resume with the right resume token passes a spent bucket; a wrong one meets it', async () => {
  const t = setup();
  for (let i = 0; i < 10; i++) await t.handshake.hello(t.carrier(), hello('wrong'));
  const s = heldSession(t);
  t.resumeWith(async () => s);
  const c = t.carrier();
  await t.handshake.resume(c, resume(s, 3));
  assert.equal(t.welcomeOf(c).resumed, true);
  t.calls.length = 0;
  t.resumeWith(() => Promise.reject(new GatewayError('auth.resume_failed')));
  await t.handshake.resume(t.carrier(), { ...resume(s, 3), resumeToken: 'guessed' });
  assert.match(t.calls[0] ?? '', /^fatal auth\.rate_limited/);
});

test('Resume: an unknown session is refused and counted', async () => {
  const t = setup();
  const s = new DeviceSession(`${IMEI}.gone`, IMEI, 'x');
  await t.handshake.resume(t.carrier(), resume(s, 0));
  assert.match(t.calls[0] ?? '', /^fatal auth\.resume_failed/);
  assert.deepEqual(t.records, ['auth_failure auth.resume_failed']);
});

test('Resume: when the claim cannot be answered, only a session held here continues', async () => {
  const t = setup();
  const busy = () =>
    Promise.reject(new GatewayError('bus.timeout', 'busy', { retryable: true, retryAfterMs: 700 }));
  t.resumeWith(busy);
  await t.handshake.resume(t.carrier(), resume(new DeviceSession(`${IMEI}.elsewhere`, IMEI, 'x'), 0));
  assert.deepEqual(t.calls, [`fatal session.busy: ${ERROR_CODES['session.busy']} (700 ms)`]);
  assert.deepEqual(t.records, []); // not an authentication failure
  t.calls.length = 0;
  const s = heldSession(t);
  const c = t.carrier();
  await t.handshake.resume(c, resume(s, 3));
  assert.equal(t.welcomeOf(c).resumed, true);
});

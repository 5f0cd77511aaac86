/**
 * Unit tests of the Handset SDK against an in-memory fake gateway. The fake
 * speaks SPEC.md §4–5 through a fake WebSocket constructor and a fake fetch,
 * so the real carriers (paths, headers, batches, status codes) run too.
 * Real-socket tests against the edge live under test/integration/.
 */

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { eventually } from '../testing/index.ts';
import { decodeBatch, decodeFrame, encodeBatch, encodeFrame } from './codec.ts';
import { TypedEmitter } from './emitter.ts';
import { GatewayError } from './errors.ts';
import { compactHeaders } from './mail-headers.ts';
import {
  backoffDelay,
  carrierUrl,
  gatewayUrls,
  Handset,
  type HandsetConnectedEvent,
  type HandsetDisconnectedEvent,
  type HandsetOptions,
  type HandsetPushEvent,
  type HandsetReconnectingEvent,
} from './handset.ts';
import { type Frame, Kind, type SequencedFrame, type Value } from './messages.ts';

const IMEI = '356938035643809';
const SECRET = 'device-secret';
const GATEWAY_URL = 'ws://gateway.test:8080';

// ---------------------------------------------------------------------------
// The fake gateway

type ConnKind = 'ws' | 'poll';

interface FakeSession {
  id: string;
  resumeToken: string;
  imei: string;
  seq: number;
  /** Sequenced frames not yet acked (the replay buffer). */
  buffer: SequencedFrame[];
  conn?: Conn;
  answered: Map<string, { body?: Value }>;
  inProgress: Set<string>;
}

abstract class Conn {
  abstract readonly kind: ConnKind;
  session?: FakeSession;
  closed = false;
  constructor(readonly gateway: FakeGateway) {}
  abstract send(frame: Frame): void;
  /** Orderly close after a Bye or fatal Error. */
  abstract close(): void;
  /** The network breaks: no Bye, no close handshake. */
  abstract drop(): void;
}

type MethodHandler = (body: Value | undefined, id: string) => Value | undefined | 'hold' | GatewayError;

class FakeGateway {
  readonly devices = new Map<string, string>([[IMEI, SECRET]]);
  readonly sessions = new Map<string, FakeSession>();
  readonly conns: Conn[] = [];
  /** Every frame received, with the carrier it came on. */
  readonly received: Array<{ kind: ConnKind; frame: Frame }> = [];
  readonly wsUrls: string[] = [];
  readonly pollRequests: Array<{ method: string; url: string; headers: Record<string, string> }> = [];
  heartbeatMs = 60_000;
  /** ok: sockets open; refuse: error + close before open; hang: never open. */
  wsMode: 'ok' | 'refuse' | 'hang' = 'ok';
  /** Hosts (host:port) whose WebSockets are refused whatever wsMode says: an edge that is down. */
  readonly refusedHosts = new Set<string>();
  answerPings = true;
  /** 'broken': every long-poll request gets a proxy's 502. */
  pollMode: 'ok' | 'broken' = 'ok';
  nextSession = 1;
  readonly methods: Record<string, MethodHandler> = {
    'sys.echo': (body) => body,
    'test.hold': () => 'hold',
    'test.fail': () => new GatewayError('request.unknown_method', 'no such method'),
  };

  readonly WebSocket = makeFakeWebSocket(this);
  readonly fetch = makeFakeFetch(this);

  framesOf(kind: Kind): Frame[] {
    return this.received.filter((r) => r.frame.kind === kind).map((r) => r.frame);
  }

  sessionOf(imei = IMEI): FakeSession {
    const s = [...this.sessions.values()].find((x) => x.imei === imei);
    assert.ok(s, 'no session');
    return s;
  }

  /** Pushes an Event into the device's session (sent now if a carrier is attached). */
  push(name: string, body?: Value, imei = IMEI): number {
    const s = this.sessionOf(imei);
    const frame: SequencedFrame = { kind: Kind.Event, seq: ++s.seq, name };
    if (body !== undefined) frame.body = body;
    s.buffer.push(frame);
    s.conn?.send(frame);
    return frame.seq;
  }

  handle(conn: Conn, frame: Frame): void {
    this.received.push({ kind: conn.kind, frame });
    if (conn.session === undefined) {
      this.#open(conn, frame);
      return;
    }
    const s = conn.session;
    switch (frame.kind) {
      case Kind.Ack:
        this.ack(s, frame.seq);
        return;
      case Kind.Ping:
        if (this.answerPings) conn.send({ kind: Kind.Pong, nonce: frame.nonce });
        return;
      case Kind.Request: {
        const done = s.answered.get(frame.id);
        if (done !== undefined) {
          this.#answer(s, frame.id, done.body);
          return;
        }
        if (s.inProgress.has(frame.id)) return;
        const handler = this.methods[frame.method];
        const result = handler
          ? handler(frame.body, frame.id)
          : new GatewayError('request.unknown_method', frame.method);
        if (result === 'hold') {
          s.inProgress.add(frame.id);
          return;
        }
        if (result instanceof GatewayError) {
          const err: SequencedFrame = {
            kind: Kind.Error,
            seq: ++s.seq,
            id: frame.id,
            code: result.code,
            message: result.message,
            fatal: false,
          };
          s.buffer.push(err);
          conn.send(err);
          return;
        }
        s.answered.set(frame.id, { body: result as Value });
        this.#answer(s, frame.id, result as Value | undefined);
        return;
      }
      default:
        return;
    }
  }

  /** Answers a held request (or any id) now. */
  answer(id: string, body?: Value, imei = IMEI): void {
    const s = this.sessionOf(imei);
    s.inProgress.delete(id);
    s.answered.set(id, body === undefined ? {} : { body });
    this.#answer(s, id, body);
  }

  #answer(s: FakeSession, id: string, body: Value | undefined): void {
    const frame: SequencedFrame = { kind: Kind.Response, seq: ++s.seq, id };
    if (body !== undefined) frame.body = body;
    s.buffer.push(frame);
    s.conn?.send(frame);
  }

  ack(s: FakeSession, seq: number): void {
    s.buffer = s.buffer.filter((f) => f.seq > seq);
  }

  #refuse(conn: Conn, code: string): void {
    conn.send({ kind: Kind.Error, code, message: code, fatal: true });
    conn.close();
  }

  #open(conn: Conn, frame: Frame): void {
    if (frame.kind === Kind.Hello) {
      const secret = this.devices.get(frame.imei);
      if (secret === undefined) {
        this.#refuse(conn, 'auth.unknown_device');
        return;
      }
      if (frame.secret !== secret && frame.token !== `token-${frame.imei}`) {
        this.#refuse(conn, 'auth.bad_secret');
        return;
      }
      for (const old of [...this.sessions.values()].filter((x) => x.imei === frame.imei)) {
        this.sessions.delete(old.id);
        if (old.conn) {
          old.conn.send({ kind: Kind.Bye, code: 'session.replaced', message: 'replaced', resumable: false });
          old.conn.close();
        }
      }
      const s: FakeSession = {
        id: `s${this.nextSession++}`,
        resumeToken: `rt-${Math.random()}`,
        imei: frame.imei,
        seq: 0,
        buffer: [],
        answered: new Map(),
        inProgress: new Set(),
      };
      this.sessions.set(s.id, s);
      this.#attach(conn, s, false);
      return;
    }
    if (frame.kind === Kind.Resume) {
      const s = this.sessions.get(frame.sessionId);
      if (s === undefined || s.resumeToken !== frame.resumeToken) {
        this.#refuse(conn, 'auth.resume_failed');
        return;
      }
      const old = s.conn;
      if (old !== undefined && old !== conn) {
        old.session = undefined;
        old.send({ kind: Kind.Bye, code: 'session.moved', message: 'moved', resumable: true });
        old.close();
      }
      this.ack(s, frame.lastSeq);
      this.#attach(conn, s, true);
      for (const f of s.buffer) conn.send(f);
      return;
    }
    this.#refuse(conn, 'protocol.bad_state');
  }

  #attach(conn: Conn, s: FakeSession, resumed: boolean): void {
    conn.session = s;
    s.conn = conn;
    conn.send({
      kind: Kind.Welcome,
      sessionId: s.id,
      resumeToken: s.resumeToken,
      token: `token-${s.imei}`,
      tokenExpiresAt: Date.now() + 3_600_000,
      heartbeatMs: this.heartbeatMs,
      resumed,
      lastSeq: s.seq,
      resumeWindowMs: 60_000,
      maxFrameBytes: 64 * 1024,
      serverTime: Date.now(),
    });
  }

  detach(conn: Conn): void {
    if (conn.session?.conn === conn) conn.session.conn = undefined;
  }

  /** Breaks every carrier of the device at once (no Bye): a network drop. */
  dropAll(): void {
    for (const c of this.conns) if (!c.closed) c.drop();
  }

  /** Ends the session on the gateway side (as if it expired). */
  forgetSessions(): void {
    this.sessions.clear();
  }

  currentConn(imei = IMEI): Conn | undefined {
    return this.sessionOf(imei).conn;
  }
}

function makeFakeWebSocket(gateway: FakeGateway) {
  return class FakeWebSocket {
    binaryType = 'blob';
    readyState = 0;
    onopen: (() => void) | null = null;
    onmessage: ((e: { data: unknown }) => void) | null = null;
    onerror: ((e: unknown) => void) | null = null;
    onclose: ((e: { code: number; reason: string }) => void) | null = null;
    readonly conn: WsConn;

    constructor(url: string) {
      gateway.wsUrls.push(url);
      this.conn = new WsConn(gateway, this);
      gateway.conns.push(this.conn);
      const mode = gateway.refusedHosts.has(new URL(url).host) ? 'refuse' : gateway.wsMode;
      setTimeout(() => {
        if (mode === 'refuse') {
          this.readyState = 3;
          this.conn.closed = true;
          this.onerror?.({});
          this.onclose?.({ code: 1006, reason: '' });
        } else if (mode === 'ok' && this.readyState === 0) {
          this.readyState = 1;
          this.onopen?.();
        }
      }, 1);
    }

    send(data: Uint8Array): void {
      if (this.readyState !== 1) throw new Error('not open');
      const copy = new Uint8Array(data);
      setTimeout(() => {
        const decoded = decodeFrame(copy);
        assert.ok(decoded.ok, 'the SDK sent an undecodable frame');
        gateway.handle(this.conn, decoded.frame);
      }, 0);
    }

    close(): void {
      if (this.readyState === 3) return;
      this.readyState = 3;
      this.conn.closed = true;
      gateway.detach(this.conn);
      setTimeout(() => this.onclose?.({ code: 1000, reason: '' }), 0);
    }
  };
}

class WsConn extends Conn {
  readonly kind = 'ws' as const;
  constructor(
    gateway: FakeGateway,
    readonly socket: { readyState: number; onmessage: ((e: { data: unknown }) => void) | null; onclose: any },
  ) {
    super(gateway);
  }

  send(frame: Frame): void {
    if (this.closed) return;
    const bytes = encodeFrame(frame);
    setTimeout(() => {
      if (this.socket.readyState === 1) this.socket.onmessage?.({ data: bytes.slice().buffer });
    }, 0);
  }

  /** Sends several frames in one macrotask (a burst off the socket). */
  burst(frames: Frame[]): void {
    const all = frames.map((f) => encodeFrame(f).slice().buffer);
    setTimeout(() => {
      for (const data of all) if (this.socket.readyState === 1) this.socket.onmessage?.({ data });
    }, 0);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.gateway.detach(this);
    // After the frames already on their way (a Bye).
    setTimeout(() => {
      if (this.socket.readyState === 3) return;
      this.socket.readyState = 3;
      this.socket.onclose?.({ code: 4000, reason: '' });
    }, 5);
  }

  drop(): void {
    this.closed = true;
    this.gateway.detach(this);
    setTimeout(() => {
      if (this.socket.readyState === 3) return;
      this.socket.readyState = 3;
      this.socket.onclose?.({ code: 1006, reason: '' });
    }, 0);
  }
}

class PollConn extends Conn {
  readonly kind = 'poll' as const;
  outbox: Frame[] = [];
  /** Set once closed: later requests of this carrier get 410. */
  gone = false;
  held?: { resolve: (frames: Frame[] | 'dropped') => void };

  send(frame: Frame): void {
    if (this.closed && !this.gone) return;
    this.outbox.push(frame);
    this.#wake();
  }

  #wake(): void {
    const held = this.held;
    if (held === undefined) return;
    this.held = undefined;
    // Let frames sent in the same tick share the answer.
    queueMicrotask(() => {
      const frames = this.outbox;
      this.outbox = [];
      held.resolve(frames);
    });
  }

  close(): void {
    this.closed = true;
    this.gone = true;
    this.gateway.detach(this);
    // A held GET delivers what is queued (the Bye), later ones get 410.
    this.#wake();
  }

  drop(): void {
    this.closed = true;
    this.gateway.detach(this);
    const held = this.held;
    this.held = undefined;
    held?.resolve('dropped');
  }
}

function makeFakeFetch(gateway: FakeGateway): typeof fetch {
  const byToken = new Map<string, PollConn>();
  const answer = (status: number, frames: Frame[]) =>
    new Response(encodeBatch(frames.map((f) => encodeFrame(f))) as BodyInit, {
      status,
      headers: { 'Content-Type': 'application/octet-stream' },
    });
  const fakeFetch = async (input: string | URL | Request, init: RequestInit = {}): Promise<Response> => {
    const url = new URL(String(input));
    const method = init.method ?? 'GET';
    const headers = Object.fromEntries(
      Object.entries((init.headers ?? {}) as Record<string, string>).map(([k, v]) => [k.toLowerCase(), v]),
    );
    gateway.pollRequests.push({ method, url: url.toString(), headers });
    await new Promise((r) => setTimeout(r, 0));
    if (url.pathname !== '/v1/poll') return new Response('not found', { status: 404 });
    if (gateway.pollMode === 'broken') return new Response('bad gateway', { status: 502 });
    const frames: Frame[] = [];
    if (init.body) {
      const batch = decodeBatch(new Uint8Array(init.body as Uint8Array));
      assert.ok(batch.ok, 'the SDK sent an undecodable batch');
      for (const bytes of batch.frames) {
        const one = decodeFrame(bytes);
        assert.ok(one.ok, 'the SDK sent an undecodable frame');
        frames.push(one.frame);
      }
    }
    const sessionHeader = headers['x-mmgw-session'];
    if (sessionHeader === undefined) {
      assert.equal(method, 'POST');
      const conn = new PollConn(gateway);
      gateway.conns.push(conn);
      for (const f of frames) gateway.handle(conn, f);
      if (conn.session === undefined) {
        const out = conn.outbox;
        const code = out[0]?.kind === Kind.Error ? out[0].code : '';
        return answer(code.startsWith('auth.') ? 401 : 400, out);
      }
      byToken.set(`${conn.session.id}/${conn.session.resumeToken}`, conn);
      const out = conn.outbox;
      conn.outbox = [];
      return answer(200, out);
    }
    const conn = byToken.get(`${sessionHeader}/${headers['x-mmgw-token']}`);
    if (conn === undefined || (conn.gone && conn.outbox.length === 0) || (conn.closed && !conn.gone)) {
      if (conn?.closed && !conn.gone) throw new TypeError('fetch failed');
      return answer(410, [{ kind: Kind.Error, code: 'auth.resume_failed', message: 'gone', fatal: true }]);
    }
    if (conn.gone) {
      const out = conn.outbox;
      conn.outbox = [];
      return answer(200, out);
    }
    if (method === 'POST') {
      for (const f of frames) gateway.handle(conn, f);
      const out = conn.outbox;
      conn.outbox = [];
      return answer(200, out);
    }
    const ack = url.searchParams.get('ack');
    if (ack !== null && conn.session) {
      gateway.received.push({ kind: 'poll', frame: { kind: Kind.Ack, seq: Number(ack) } });
      gateway.ack(conn.session, Number(ack));
    }
    if (conn.outbox.length > 0) {
      const out = conn.outbox;
      conn.outbox = [];
      return answer(200, out);
    }
    const wait = Math.min(Number(url.searchParams.get('wait') ?? 25_000), 30_000);
    const older = conn.held;
    conn.held = undefined;
    older?.resolve([]);
    const result = await new Promise<Frame[] | 'dropped'>((resolve, reject) => {
      const timer = setTimeout(() => {
        if (conn.held?.resolve === done) conn.held = undefined;
        resolve([]);
      }, wait);
      const done = (r: Frame[] | 'dropped') => {
        clearTimeout(timer);
        resolve(r);
      };
      conn.held = { resolve: done };
      init.signal?.addEventListener('abort', () => {
        clearTimeout(timer);
        if (conn.held?.resolve === done) conn.held = undefined;
        reject(new DOMException('aborted', 'AbortError'));
      });
    });
    if (result === 'dropped') throw new TypeError('fetch failed');
    return answer(200, result);
  };
  return fakeFetch as typeof fetch;
}

// ---------------------------------------------------------------------------
// Helpers

interface Recorded {
  events: HandsetPushEvent[];
  connected: HandsetConnectedEvent[];
  disconnected: HandsetDisconnectedEvent[];
  reconnecting: HandsetReconnectingEvent[];
  errors: GatewayError[];
}

function setup(
  t: { after(fn: () => unknown): void },
  options: Partial<HandsetOptions> = {},
  gateway = new FakeGateway(),
) {
  const handset = new Handset({
    url: 'ws://gateway.test:8080',
    imei: IMEI,
    secret: SECRET,
    WebSocket: gateway.WebSocket,
    fetch: gateway.fetch,
    backoff: { initialMs: 5, maxMs: 20 },
    ...options,
  });
  const rec: Recorded = { events: [], connected: [], disconnected: [], reconnecting: [], errors: [] };
  handset.on('event', (e) => rec.events.push(e));
  handset.on('connected', (e) => rec.connected.push(e));
  handset.on('disconnected', (e) => rec.disconnected.push(e));
  handset.on('reconnecting', (e) => rec.reconnecting.push(e));
  handset.on('error', (e) => rec.errors.push(e));
  t.after(() => handset.close());
  return { handset, gateway, rec };
}

// ---------------------------------------------------------------------------
// Tests

describe('carrierUrl', () => {
  test('derives /v1/ws and /v1/poll with the matching scheme, keeping a path prefix', () => {
    assert.equal(carrierUrl('ws://h:8080', 'ws'), 'ws://h:8080/v1/ws');
    assert.equal(carrierUrl('ws://h:8080', 'poll'), 'http://h:8080/v1/poll');
    assert.equal(carrierUrl('https://h/mmgw/', 'ws'), 'wss://h/mmgw/v1/ws');
    assert.equal(carrierUrl('wss://h', 'poll'), 'https://h/v1/poll');
    assert.throws(
      () => carrierUrl('ftp://h', 'ws'),
      (e: GatewayError) => e.code === 'config.invalid',
    );
    assert.throws(
      () => carrierUrl('not a url', 'ws'),
      (e: GatewayError) => e.code === 'config.invalid',
    );
  });
});

describe('TypedEmitter', () => {
  test('on, off and once', () => {
    const em = new TypedEmitter<{ a: number }>();
    const seen: number[] = [];
    const off = em.on('a', (n) => seen.push(n));
    em.once('a', (n) => seen.push(n * 10));
    em.emit('a', 1);
    em.emit('a', 2);
    off();
    em.emit('a', 3);
    assert.deepEqual(seen, [1, 10, 2]);
    assert.equal(em.listenerCount('a'), 0);
  });
});

describe('Handset: several gateway URLs', () => {
  test('a refusing first URL moves the handset on to the next, which it then reports', async (t) => {
    const gateway = new FakeGateway();
    gateway.refusedHosts.add('down.test:8080');
    const { handset, rec } = setup(
      t,
      { transport: 'ws', url: 'ws://down.test:8080', urls: ['ws://gateway.test:8080'] },
      gateway,
    );
    assert.equal(handset.url, 'ws://down.test:8080');
    await handset.connect();
    assert.deepEqual(gateway.wsUrls, ['ws://down.test:8080/v1/ws', 'ws://gateway.test:8080/v1/ws']);
    assert.equal(rec.reconnecting[0]?.url, 'ws://gateway.test:8080');
    assert.equal(rec.connected[0]?.url, 'ws://gateway.test:8080');
    assert.equal(handset.url, 'ws://gateway.test:8080');
  });

  test('long-poll: an edge that never answers times out and the handset moves on', async (t) => {
    const gateway = new FakeGateway();
    const frozenFetch = ((input: string | URL | Request, init?: RequestInit) => {
      if (new URL(String(input)).host !== 'frozen.test:8080') return gateway.fetch(input, init);
      // Accepted and never answered, like a SIGSTOPped process: only the abort ends it.
      return new Promise<Response>((_resolve, reject) => {
        init?.signal?.addEventListener('abort', () => reject(new Error('aborted')));
      });
    }) as typeof fetch;
    const { handset, rec } = setup(
      t,
      {
        transport: 'poll',
        url: 'http://frozen.test:8080',
        urls: ['ws://gateway.test:8080'],
        requestTimeoutMs: 50,
        fetch: frozenFetch,
      },
      gateway,
    );
    await handset.connect();
    assert.equal(rec.connected[0]?.url, 'ws://gateway.test:8080');
  });

  test('long-poll: a 503 carrying session.busy is an answer: the handset retries that edge as told', async (t) => {
    const gateway = new FakeGateway();
    let refused = 0;
    const busyOnce = ((input: string | URL | Request, init?: RequestInit) => {
      if (refused++ > 0) return gateway.fetch(input, init);
      const busy = encodeFrame({
        kind: Kind.Error,
        code: 'session.busy',
        message: 'busy elsewhere',
        fatal: true,
        retryAfterMs: 10,
      });
      return Promise.resolve(new Response(encodeBatch([busy]) as BodyInit, { status: 503 }));
    }) as typeof fetch;
    const { handset, rec } = setup(
      t,
      { transport: 'poll', urls: ['ws://other.test:8080'], fetch: busyOnce },
      gateway,
    );
    await handset.connect();
    assert.deepEqual(
      rec.errors.map((e) => e.code),
      ['session.busy'],
    );
    assert.deepEqual(
      rec.reconnecting.map((r) => [r.url, r.delayMs]),
      [[GATEWAY_URL, 10]],
    );
    assert.equal(rec.connected[0]?.url, GATEWAY_URL);
  });

  test('url and urls are checked up front: none, an empty or a bad one is config.invalid', () => {
    const invalid = (e: GatewayError) => e.code === 'config.invalid';
    assert.throws(() => new Handset({ imei: IMEI }), invalid);
    assert.throws(() => new Handset({ imei: IMEI, urls: [] }), invalid);
    assert.throws(() => new Handset({ imei: IMEI, urls: ['ws://a.test', ''] }), invalid);
    assert.throws(() => new Handset({ imei: IMEI, urls: ['ws://a.test', 'ftp://b.test'] }), invalid);
    assert.throws(() => new Handset({ imei: IMEI, urls: 'ws://a.test' as unknown as string[] }), invalid);
    assert.deepEqual(gatewayUrls({ url: 'ws://a.test', urls: ['ws://b.test', 'ws://a.test'] }), [
      'ws://a.test',
      'ws://b.test',
    ]);
  });
});

describe('Handset', () => {
  test('connects over WebSocket, answers requests and pings', async (t) => {
    const { handset, gateway, rec } = setup(t, {
      transport: 'ws',
      client: 'test/1',
      caps: { screenWidth: 128 },
    });
    const welcome = await handset.connect();
    assert.equal(welcome.sessionId, 's1');
    assert.equal(handset.sessionId, 's1');
    assert.equal(handset.transport, 'ws');
    assert.deepEqual(gateway.wsUrls, ['ws://gateway.test:8080/v1/ws']);
    assert.deepEqual(rec.connected, [{ sessionId: 's1', transport: 'ws', resumed: false, url: GATEWAY_URL }]);
    const hello = gateway.framesOf(Kind.Hello)[0];
    assert.ok(hello?.kind === Kind.Hello);
    assert.equal(hello.secret, SECRET);
    assert.equal(hello.client, 'test/1');
    // The SDK adds the compact chat forms it expands (SPEC.md §9) and frame compression (§4.4).
    assert.deepEqual(hello.caps, { screenWidth: 128, encodings: ['im.compact'], compression: ['deflate'] });

    const body = { text: 'hi', n: 3, raw: new Uint8Array([1, 2, 3]) };
    assert.deepEqual(await handset.request('sys.echo', body), body);
    const rtt = await handset.ping();
    assert.ok(rtt >= 0);
    await assert.rejects(
      handset.request('test.fail'),
      (e: GatewayError) => e.code === 'request.unknown_method',
    );
    assert.equal(handset.lastSeq, 2);
  });

  test('mail.sync goes out compact and resolves with items; an explicit compact is left alone', async (t) => {
    const { handset, gateway } = setup(t, { transport: 'ws' });
    const header = {
      uid: 7,
      from: { name: 'Bob', address: 'bob@example.test' },
      subject: 'Hi',
      date: 1795420800000,
      size: 1234,
      flags: ['\\Seen'],
      attachments: 0,
      preview: 'Are we still on',
    };
    const answer = { items: [header], cursor: 'c1', reset: false };
    gateway.methods['mail.sync'] = (body) =>
      (body as { compact?: boolean }).compact ? compactHeaders(answer) : answer;
    await handset.connect();
    assert.deepEqual(await handset.request('mail.sync', { account: 'a', folder: 'INBOX', limit: 5 }), answer);
    const compact = await handset.request<any>('mail.sync', { account: 'a', limit: 5, compact: true });
    assert.deepEqual(compact.rows, [
      [7, 'Bob', 'bob@example.test', 'Hi', 1795420800000, 1234, ['\\Seen'], 0, 'Are we still on'],
    ]);
    assert.deepEqual(await handset.request('mail.sync', { account: 'a', limit: 5, compact: false }), answer);
    const sent = gateway.framesOf(Kind.Request).map((f) => (f.kind === Kind.Request ? f.body : undefined));
    assert.deepEqual(
      sent.map((b) => (b as { compact?: boolean }).compact),
      [true, true, false],
    );
  });

  test('refuses a wrong secret with a typed error and does not retry', async (t) => {
    const { handset, gateway, rec } = setup(t, { transport: 'ws', secret: 'wrong' });
    await assert.rejects(
      handset.connect(),
      (e: unknown) => e instanceof GatewayError && e.code === 'auth.bad_secret',
    );
    // A retry is announced ('reconnecting') in the very step that schedules it, so none is
    // coming (handset-session.test.ts checks that a refusal schedules nothing).
    assert.equal(gateway.wsUrls.length, 1);
    assert.deepEqual(
      rec.errors.map((e) => e.code),
      ['auth.bad_secret'],
    );
    assert.deepEqual(rec.disconnected.at(-1)?.willReconnect, false);
    assert.equal(rec.reconnecting.length, 0);
    await assert.rejects(
      handset.request('sys.echo'),
      (e: GatewayError) => e.code === 'auth.bad_secret' || e.code === 'session.closed',
    );
  });

  test('refuses an unknown device over long-poll (HTTP 401) too', async (t) => {
    const { handset, gateway } = setup(t, { transport: 'poll', imei: '490154203237518' });
    await assert.rejects(handset.connect(), (e: GatewayError) => e.code === 'auth.unknown_device');
    assert.equal(gateway.pollRequests.length, 1);
  });

  test('delivers each sequenced frame once, in order, dropping duplicates', async (t) => {
    const { handset, gateway, rec } = setup(t, { transport: 'ws' });
    await handset.connect();
    const conn = gateway.currentConn() as WsConn;
    const ev = (seq: number): Frame => ({ kind: Kind.Event, seq, name: 'n', body: seq });
    gateway.sessionOf().seq = 4;
    conn.burst([ev(1), ev(2), ev(1), ev(3), ev(2), ev(4), ev(4)]);
    await eventually('4 events', () => rec.events.length >= 4);
    await handset.ping(); // a round trip later, any extra event would have arrived
    assert.deepEqual(
      rec.events.map((e) => e.seq),
      [1, 2, 3, 4],
    );
    assert.equal(handset.lastSeq, 4);
  });

  test('answers and events reach the application in seq order', async (t) => {
    const { handset, gateway } = setup(t, { transport: 'ws' });
    await handset.connect();
    const seen: string[] = [];
    handset.on('event', (e) => seen.push(`event ${e.seq}`));
    const answered = handset.request('test.hold', null, { id: 'r' }).then(() => seen.push('response 1'));
    await eventually('request', () => gateway.framesOf(Kind.Request).length === 1);
    const s = gateway.sessionOf();
    s.seq = 3;
    (gateway.currentConn() as WsConn).burst([
      { kind: Kind.Response, seq: 1, id: 'r' },
      { kind: Kind.Event, seq: 2, name: 'a' },
      { kind: Kind.Event, seq: 3, name: 'b' },
    ]);
    await answered;
    await eventually('events', () => seen.length === 3);
    assert.deepEqual(seen, ['response 1', 'event 2', 'event 3']);
  });

  test('acks cumulatively: at once every 100 frames, else after ackIntervalMs', async (t) => {
    const { handset, gateway, rec } = setup(t, { transport: 'ws', ackIntervalMs: 40 });
    await handset.connect();
    const conn = gateway.currentConn() as WsConn;
    const s = gateway.sessionOf();
    const frames: Frame[] = [];
    for (let i = 0; i < 250; i++) frames.push({ kind: Kind.Event, seq: ++s.seq, name: 'e' });
    conn.burst(frames);
    await eventually('three acks', () => gateway.framesOf(Kind.Ack).length >= 3);
    assert.deepEqual(
      gateway.framesOf(Kind.Ack).map((f) => (f.kind === Kind.Ack ? f.seq : -1)),
      [100, 200, 250],
    );
    assert.equal(rec.events.length, 250);
    assert.equal(s.buffer.length, 0, 'the gateway trimmed its replay buffer');
    // One more event: one more ack, for it alone.
    gateway.push('late');
    await eventually('fourth ack', () => gateway.framesOf(Kind.Ack).length >= 4);
    const last = gateway.framesOf(Kind.Ack)[3];
    assert.ok(last?.kind === Kind.Ack && last.seq === 251);
  });

  test('resumes after an abrupt disconnect and sees the missed events once', async (t) => {
    const { handset, gateway, rec } = setup(t, { transport: 'ws', ackIntervalMs: 10_000 });
    await handset.connect();
    gateway.push('a');
    gateway.push('b');
    await eventually('2 events', () => rec.events.length === 2);
    gateway.dropAll();
    await eventually('disconnected', () => rec.disconnected.length === 1);
    assert.equal(rec.disconnected[0]?.willReconnect, true);
    gateway.push('c'); // while detached
    await eventually('resumed', () => rec.connected.length === 2);
    gateway.push('d');
    await eventually('4 events', () => rec.events.length === 4);
    await handset.ping();
    assert.deepEqual(
      rec.events.map((e) => `${e.seq}${e.name}`),
      ['1a', '2b', '3c', '4d'],
    );
    assert.deepEqual(rec.connected[1], { sessionId: 's1', transport: 'ws', resumed: true, url: GATEWAY_URL });
    const resume = gateway.framesOf(Kind.Resume)[0];
    assert.ok(resume?.kind === Kind.Resume);
    assert.equal(resume.lastSeq, 2);
    assert.equal(resume.sessionId, 's1');
  });

  test('resends a pending request with the same id after reconnect, resolving it once', async (t) => {
    const { handset, gateway } = setup(t, { transport: 'ws' });
    await handset.connect();
    const answer = handset.request('test.hold', 'x', { id: 'req-1' });
    await eventually('request at gateway', () => gateway.framesOf(Kind.Request).length === 1);
    // The edge loses the in-progress request with the carrier (as a crashed node would).
    gateway.sessionOf().inProgress.clear();
    gateway.methods['test.hold'] = (body) => body;
    gateway.dropAll();
    assert.equal(await answer, 'x');
    const ids = gateway.framesOf(Kind.Request).map((f) => (f.kind === Kind.Request ? f.id : ''));
    assert.deepEqual(ids, ['req-1', 'req-1']);
    // A second answer for the same id (a replay) does not resolve anything twice.
    gateway.answer('req-1', 'again');
    assert.equal(await handset.request('sys.echo', 1), 1);
  });

  test('a request made while disconnected is sent once connected', async (t) => {
    const { handset, gateway } = setup(t, { transport: 'ws' });
    const answer = handset.request('sys.echo', 'early');
    await handset.connect();
    assert.equal(await answer, 'early');
    assert.equal(gateway.framesOf(Kind.Request).length, 1);
  });

  test('request timeout and bad bodies are typed errors', async (t) => {
    const { handset } = setup(t, { transport: 'ws' });
    await handset.connect();
    await assert.rejects(
      handset.request('test.hold', null, { timeoutMs: 20 }),
      (e: GatewayError) => e.code === 'request.timeout',
    );
    await assert.rejects(
      handset.request('sys.echo', { f: (() => 1) as unknown as Value }),
      (e: GatewayError) => e.code === 'request.bad_input',
    );
    await assert.rejects(
      handset.request('sys.echo', new Uint8Array(65 * 1024)),
      (e: GatewayError) => e.code === 'protocol.frame_too_large',
    );
    const held = assert.rejects(
      handset.request('test.hold', null, { id: 'same' }),
      (e: GatewayError) => e.code === 'session.closed',
    );
    await assert.rejects(
      handset.request('test.hold', null, { id: 'same' }),
      (e: GatewayError) => e.code === 'request.duplicate',
    );
    await handset.close();
    await held;
  });

  test('reconnects with exponential backoff from the injected random, reset by a Welcome', async (t) => {
    const gateway = new FakeGateway();
    gateway.wsMode = 'refuse';
    const backoff = { initialMs: 2, maxMs: 16, factor: 2, jitter: 0.5 };
    const { handset, rec } = setup(t, { transport: 'ws', backoff, random: () => 0.5 }, gateway);
    const connected = handset.connect();
    await eventually('5 retries', () => rec.reconnecting.length >= 5);
    gateway.wsMode = 'ok';
    await connected;
    const expected = [0, 1, 2, 3, 4].map((a) => backoffDelay(a, backoff, () => 0.5));
    assert.deepEqual(expected, [2, 3, 6, 12, 12]);
    assert.deepEqual(
      rec.reconnecting.slice(0, 5).map((r) => [r.attempt, r.delayMs, r.transport]),
      expected.map((d, i) => [i + 1, d, 'ws']),
    );
    const before = rec.reconnecting.length;
    gateway.dropAll();
    await eventually('resumed', () => rec.connected.length === 2);
    assert.deepEqual(
      rec.reconnecting.slice(before).map((r) => r.attempt),
      [1],
    );
  });

  test("'auto' falls back to long-poll after two WebSocket failures and works over it", async (t) => {
    const gateway = new FakeGateway();
    gateway.wsMode = 'refuse';
    const { handset, rec } = setup(t, { transport: 'auto', pollWaitMs: 1_000 }, gateway);
    await handset.connect();
    assert.equal(gateway.wsUrls.length, 2);
    assert.equal(handset.transport, 'poll');
    assert.deepEqual(rec.connected, [
      { sessionId: 's1', transport: 'poll', resumed: false, url: GATEWAY_URL },
    ]);
    assert.equal(gateway.pollRequests[0]?.url, 'http://gateway.test:8080/v1/poll');
    assert.deepEqual(await handset.request('sys.echo', [1, 'two']), [1, 'two']);
    gateway.push('pushed', { over: 'poll' });
    await eventually('event over poll', () => rec.events.length === 1);
    assert.deepEqual(rec.events[0], { name: 'pushed', body: { over: 'poll' }, seq: 2 });
    // Session headers on every later request, and the GET acks what it has.
    const later = gateway.pollRequests.slice(1);
    assert.ok(later.every((r) => r.headers['x-mmgw-session'] === 's1' && r.headers['x-mmgw-token']));
    await eventually('GET with ack=2', () =>
      gateway.pollRequests.some((r) => r.method === 'GET' && r.url.includes('ack=2')),
    );
  });

  test("'auto' falls back when WebSocket never opens within fallbackAfterMs", async (t) => {
    const gateway = new FakeGateway();
    gateway.wsMode = 'hang';
    const { handset } = setup(t, { transport: 'auto', fallbackAfterMs: 30, pollWaitMs: 1_000 }, gateway);
    await handset.connect();
    assert.equal(handset.transport, 'poll');
    assert.equal(gateway.wsUrls.length, 1);
  });

  test('switchTransport moves the same session ws → poll → ws without losing or doubling events', async (t) => {
    const { handset, gateway, rec } = setup(t, { transport: 'ws', pollWaitMs: 1_000 });
    await handset.connect();
    gateway.push('1');
    await eventually('event 1', () => rec.events.length === 1);
    await handset.switchTransport('poll');
    assert.equal(handset.transport, 'poll');
    gateway.push('2');
    await eventually('event 2', () => rec.events.length === 2);
    assert.equal(await handset.request('sys.echo', 'p'), 'p');
    await handset.switchTransport('ws');
    assert.equal(handset.transport, 'ws');
    gateway.push('3');
    await eventually('event 3', () => rec.events.length === 3);
    await handset.ping();
    assert.deepEqual(
      rec.events.map((e) => e.name),
      ['1', '2', '3'],
    );
    assert.deepEqual(
      rec.connected.map((c) => [c.sessionId, c.transport, c.resumed]),
      [
        ['s1', 'ws', false],
        ['s1', 'poll', true],
        ['s1', 'ws', true],
      ],
    );
    assert.equal(rec.disconnected.length, 0);
    assert.equal(gateway.framesOf(Kind.Hello).length, 1);
  });

  test('a carrier reached by switchTransport that drops is noticed at once and resumed', async (t) => {
    const { handset, gateway, rec } = setup(t, { transport: 'ws', pollWaitMs: 1_000 });
    await handset.connect();
    await handset.switchTransport('poll');
    gateway.dropAll();
    await eventually('resumed', () => rec.connected.length === 3);
    assert.equal(rec.disconnected.length, 1);
    assert.deepEqual(rec.connected[2], {
      sessionId: 's1',
      transport: 'poll',
      resumed: true,
      url: GATEWAY_URL,
    });
  });

  test('a listener that calls in while a frame is handled is served right after it', async (t) => {
    const { handset, gateway } = setup(t, { transport: 'ws' });
    let echo: Promise<void> | undefined;
    let closed: Promise<void> | undefined;
    const isClosed = (e: GatewayError) => e.code === 'session.closed';
    handset.on('connected', () => {
      echo = assert.rejects(handset.request('sys.echo', 'from the listener'), isClosed);
      closed = handset.close();
    });
    const pending = assert.rejects(handset.request('test.hold', null, { id: 'held' }), isClosed);
    await handset.connect();
    await closed;
    await echo;
    await pending;
    // The Welcome's resend went out before the Bye of close().
    const order = gateway.received.map((r) => r.frame.kind);
    assert.deepEqual(order.slice(order.indexOf(Kind.Request)), [Kind.Request, Kind.Request, Kind.Bye]);
  });

  test('a failed switch leaves the session where it was', async (t) => {
    const { handset, gateway, rec } = setup(t, { transport: 'auto' });
    await handset.connect();
    gateway.pollMode = 'broken';
    await assert.rejects(
      handset.switchTransport('poll'),
      (e: GatewayError) => e.code === 'request.unavailable',
    );
    assert.equal(handset.transport, 'ws');
    assert.equal(await handset.request('sys.echo', 'still'), 'still');
    gateway.dropAll();
    await eventually('resumed', () => rec.connected.length === 2);
    assert.deepEqual(rec.connected[1], { sessionId: 's1', transport: 'ws', resumed: true, url: GATEWAY_URL });
  });

  test('a failed resume starts a new session, says resumed:false, and resends pending requests', async (t) => {
    const { handset, gateway, rec } = setup(t, { transport: 'ws' });
    await handset.connect();
    gateway.push('old');
    await eventually('event', () => rec.events.length === 1);
    const answer = handset.request('test.hold', 'keep', { id: 'r9' });
    await eventually('request at gateway', () => gateway.framesOf(Kind.Request).length === 1);
    gateway.forgetSessions();
    gateway.methods['test.hold'] = (body) => body;
    gateway.dropAll();
    assert.equal(await answer, 'keep');
    assert.deepEqual(rec.connected.at(-1), {
      sessionId: 's2',
      transport: 'ws',
      resumed: false,
      url: GATEWAY_URL,
    });
    assert.equal(handset.sessionId, 's2');
    gateway.push('new');
    await eventually('event in new session', () => rec.events.length === 2);
    assert.deepEqual(
      rec.events.map((e) => [e.name, e.seq]),
      [
        ['old', 1],
        ['new', 2],
      ],
    );
    assert.equal(gateway.framesOf(Kind.Hello).length, 2);
    assert.equal(rec.errors.length, 0);
  });

  test('without a secret, the token from the Welcome authenticates a new session', async (t) => {
    const { handset, gateway, rec } = setup(t, {
      transport: 'ws',
      secret: undefined,
      token: `token-${IMEI}`,
    });
    await handset.connect();
    gateway.forgetSessions();
    gateway.dropAll();
    await eventually('new session', () => rec.connected.length === 2);
    const hellos = gateway.framesOf(Kind.Hello);
    assert.ok(
      hellos.every((h) => h.kind === Kind.Hello && h.secret === undefined && h.token === `token-${IMEI}`),
    );
  });

  test('Bye session.replaced stops without reconnecting and rejects what is pending', async (t) => {
    const gateway = new FakeGateway();
    const first = setup(t, { transport: 'ws' }, gateway);
    await first.handset.connect();
    const pending = assert.rejects(
      first.handset.request('test.hold'),
      (e: GatewayError) => e.code === 'session.replaced',
    );
    await eventually('request', () => gateway.framesOf(Kind.Request).length === 1);
    const second = setup(t, { transport: 'ws' }, gateway);
    await second.handset.connect();
    await pending;
    assert.deepEqual(first.rec.disconnected, [
      { code: 'session.replaced', reason: 'replaced', willReconnect: false },
    ]);
    // As above: no 'reconnecting', no retry.
    assert.equal(first.rec.reconnecting.length, 0);
    assert.equal(gateway.wsUrls.length, 2);
    assert.equal(second.handset.transport, 'ws');
  });

  test('Bye session.draining reconnects after reconnectAfterMs and resumes', async (t) => {
    const { handset, gateway, rec } = setup(t, { transport: 'ws' });
    await handset.connect();
    const conn = gateway.currentConn()!;
    conn.send({
      kind: Kind.Bye,
      code: 'session.draining',
      message: 'draining',
      resumable: true,
      reconnectAfterMs: 15,
    });
    conn.close();
    await eventually('resumed', () => rec.connected.length === 2);
    assert.equal(rec.connected[1]?.resumed, true);
    assert.deepEqual(rec.disconnected[0], {
      code: 'session.draining',
      reason: 'draining',
      willReconnect: true,
    });
    assert.equal(rec.reconnecting[0]?.delayMs, 15);
  });

  test('a silent carrier is declared dead after 2 heartbeats and the session resumes', async (t) => {
    const gateway = new FakeGateway();
    gateway.heartbeatMs = 40;
    const { handset, rec } = setup(t, { transport: 'ws' }, gateway);
    await handset.connect();
    await eventually('a heartbeat Ping', () => gateway.framesOf(Kind.Ping).length >= 1);
    gateway.answerPings = false;
    await eventually('disconnected', () => rec.disconnected.length === 1);
    assert.equal(rec.disconnected[0]?.code, 'session.heartbeat_timeout');
    gateway.answerPings = true;
    await eventually('resumed', () => rec.connected.length === 2);
    assert.equal(rec.connected[1]?.resumed, true);
  });

  test('answers a Ping from the gateway with a Pong', async (t) => {
    const { handset, gateway } = setup(t, { transport: 'ws' });
    await handset.connect();
    gateway.currentConn()!.send({ kind: Kind.Ping, nonce: 77 });
    await eventually('pong', () => gateway.framesOf(Kind.Pong).length === 1);
    assert.deepEqual(gateway.framesOf(Kind.Pong)[0], { kind: Kind.Pong, nonce: 77 });
  });

  test('long-poll: a broken GET leads to a resume on a new carrier', async (t) => {
    const { handset, gateway, rec } = setup(t, { transport: 'poll', pollWaitMs: 1_000 });
    await handset.connect();
    gateway.dropAll();
    await eventually('resumed', () => rec.connected.length === 2);
    assert.equal(rec.connected[1]?.resumed, true);
    assert.equal(rec.connected[1]?.transport, 'poll');
    gateway.push('after');
    await eventually('event', () => rec.events.length === 1);
  });

  test('close() acks what was received and rejects later calls', async (t) => {
    const { handset, gateway, rec } = setup(t, { transport: 'ws', ackIntervalMs: 60_000 });
    await handset.connect();
    gateway.push('x');
    await eventually('event', () => rec.events.length === 1);
    await handset.close();
    await eventually('final ack', () => gateway.framesOf(Kind.Ack).length === 1);
    assert.deepEqual(rec.disconnected, [{ code: 'session.closed', reason: 'closed', willReconnect: false }]);
    await assert.rejects(handset.ping(), (e: GatewayError) => e.code === 'session.closed');
    await assert.rejects(handset.connect(), (e: GatewayError) => e.code === 'session.closed');
  });
});

/**
 * One load-generator process of the edge benchmark (forked by run.ts).
 *
 * It holds up to ~18,000 device sessions (the per-process open-file cap is
 * 20,000) from its own 127.x.y.z source address (each source address has one
 * ephemeral port range), behaves like a well-mannered handset (Hello with the
 * device secret, Ping within the heartbeat, cumulative Ack at least every 100
 * events or 250 ms, Resume with its last seq after a drop), and counts what it
 * sees. The parent drives it with IPC commands, one phase at a time.
 */
import { Kind } from '../../../device-protocol/messages.ts';
import { decodeBenchFrame, encodeBenchFrame } from './bench-frames.ts';
import type { ClientCommand, ClientReply, ClientStats, PhaseResult } from './protocol.ts';
import { RawWs, type RawWsHandler, type RawWsTarget } from './raw-ws.ts';

/** Where a device session stands, as seen by this handset. */
enum State {
  Idle = 0,
  Connecting = 1,
  Open = 2,
  Closed = 3,
}

interface DeviceSession {
  imei: string;
  secret: string;
  state: State;
  conn: RawWs | null;
  sessionId: string;
  resumeToken: string;
  /** Highest event seq received (the device holds everything up to here). */
  lastSeq: number;
  /** Highest seq acked to the gateway. */
  ackedSeq: number;
  lastSentAt: number;
  startedAt: number;
  /** Is this session in the list of sessions owing an Ack? */
  ackQueued: boolean;
  resuming: boolean;
  portRetries: number;
  /** Retryable refusals (session.busy during a storm, rate limits) answered in this phase. */
  refusals: number;
}

/** Refusals a handset answers by coming back after the hinted delay (as the Handset SDK does). */
const RETRYABLE = new Set(['session.busy', 'auth.rate_limited', 'request.unavailable']);
const MAX_REFUSALS = 5;
/** Retries made in the current phase, by code (reported with the phase's result). */
let retried: Record<string, number> = {};

function retryLater(s: DeviceSession, code: string, afterMs: number): void {
  bump(retried, code);
  const c = s.conn;
  s.conn = null;
  c?.reset();
  setTimeout(() => {
    if (s.state !== State.Connecting) return;
    s.portRetries = 0;
    s.conn = new RawWs(target, handler, s, nextLocalPort());
  }, afterMs);
}

/** Source ports this process binds explicitly, in turn (it owns its source address; see RawWs). */
const FIRST_PORT = 10_000;
const LAST_PORT = 65_000;
let localPortCursor = FIRST_PORT;
function nextLocalPort(): number {
  const p = localPortCursor;
  localPortCursor = p >= LAST_PORT ? FIRST_PORT : p + 1;
  return p;
}

let target: RawWsTarget;
let sessions: DeviceSession[] = [];
let concurrency = 200;
let ackEvery = 100;
let ackDelayMs = 1000;
let connectTimeoutMs = 30_000;
let pingEveryMs = 10_000;

// Counters since the last `stats`/phase reset.
let eventsReceived = 0;
let eventsAcked = 0;
let gaps = 0;
let duplicates = 0;
let pingsSent = 0;
let pongs = 0;
const closedByServer: Record<string, number> = {};
let ackDue: DeviceSession[] = [];

// The phase in progress (connect or resume), resolved when every session of it settled.
let phase: {
  pending: number;
  ok: number;
  resumed: number;
  errors: Record<string, number>;
  latencies: number[];
  queue: DeviceSession[];
  next: number;
  /** Left out by an abort. */
  notStarted: number;
  inFlight: number;
  startedAt: number;
  mode: 'hello' | 'resume';
  done: (r: PhaseResult) => void;
} | null = null;

function bump(map: Record<string, number>, key: string): void {
  map[key] = (map[key] ?? 0) + 1;
}

function send(s: DeviceSession, bytes: Uint8Array): void {
  s.conn?.send(bytes);
  s.lastSentAt = Date.now();
}

const handler: RawWsHandler = {
  onOpen(conn) {
    const s = conn.owner as DeviceSession;
    if (s.resuming) {
      send(
        s,
        encodeBenchFrame({
          kind: Kind.Resume,
          version: 1,
          sessionId: s.sessionId,
          resumeToken: s.resumeToken,
          lastSeq: s.lastSeq,
        }),
      );
    } else send(s, encodeBenchFrame({ kind: Kind.Hello, version: 1, imei: s.imei, secret: s.secret }));
  },

  onMessage(conn, payload) {
    const s = conn.owner as DeviceSession;
    const f = decodeBenchFrame(payload);
    if (f === undefined) {
      bump(closedByServer, 'undecodable_frame');
      return;
    }
    switch (f.kind) {
      case Kind.Event: {
        if (f.seq <= s.lastSeq) duplicates++;
        else {
          if (f.seq !== s.lastSeq + 1) gaps += f.seq - s.lastSeq - 1;
          s.lastSeq = f.seq;
          eventsReceived++;
          if (s.lastSeq - s.ackedSeq >= ackEvery) sendAck(s);
          else if (!s.ackQueued) {
            s.ackQueued = true;
            ackDue.push(s);
          }
        }
        return;
      }
      case Kind.Welcome: {
        if (s.state !== State.Connecting) return;
        s.state = State.Open;
        s.sessionId = f.sessionId;
        s.resumeToken = f.resumeToken;
        if (f.heartbeatMs > 0) pingEveryMs = Math.min(pingEveryMs, Math.floor(f.heartbeatMs * 0.8));
        settle(s, f.resumed ? 'resumed' : 'ok');
        return;
      }
      case Kind.Pong:
        pongs++;
        return;
      case Kind.Ping:
        send(s, encodeBenchFrame({ kind: Kind.Pong, nonce: f.nonce }));
        return;
      case Kind.Error:
        if (s.state === State.Connecting && RETRYABLE.has(f.code) && s.refusals++ < MAX_REFUSALS) {
          retryLater(s, f.code, f.retryAfterMs ?? 1000);
        } else if (s.state === State.Connecting) settle(s, f.code);
        else if (f.fatal) bump(closedByServer, f.code);
        return;
      case Kind.Bye:
        if (s.state === State.Connecting) settle(s, `bye:${f.code}`);
        else bump(closedByServer, `bye:${f.code}`);
        return;
      default:
        return;
    }
  },

  onClose(conn, reason) {
    const s = conn.owner as DeviceSession;
    if (s.conn !== conn) return;
    // Source port taken (by a listener on a wildcard address, or a connection not yet gone): next port.
    if (reason === 'EADDRINUSE' && s.state === State.Connecting && !conn.open && s.portRetries++ < 20) {
      s.conn = new RawWs(target, handler, s, nextLocalPort());
      return;
    }
    s.conn = null;
    const was = s.state;
    s.state = State.Closed;
    if (was === State.Connecting) settle(s, reason);
    else if (was === State.Open && reason !== 'reset_by_client' && reason !== 'client_close')
      bump(closedByServer, reason);
  },
};

function sendAck(s: DeviceSession): void {
  if (s.state !== State.Open || s.lastSeq <= s.ackedSeq) return;
  send(s, encodeBenchFrame({ kind: Kind.Ack, seq: s.lastSeq }));
  eventsAcked += s.lastSeq - s.ackedSeq;
  s.ackedSeq = s.lastSeq;
}

/** One session of the current phase finished (welcome or failure): start the next one. */
function settle(s: DeviceSession, outcome: string): void {
  if (phase === null) return;
  phase.pending--;
  phase.inFlight--;
  if (outcome === 'ok' || outcome === 'resumed') {
    phase.latencies.push(Date.now() - s.startedAt);
    if (outcome === 'resumed') phase.resumed++;
    else phase.ok++;
  } else {
    bump(phase.errors, outcome);
    if (s.conn !== null) {
      const c = s.conn;
      s.conn = null;
      s.state = State.Closed;
      c.reset();
    }
  }
  pump();
}

function pump(): void {
  const p = phase;
  if (p === null) return;
  while (p.inFlight < concurrency && p.next < p.queue.length) {
    const s = p.queue[p.next++]!;
    p.inFlight++;
    s.state = State.Connecting;
    s.resuming = p.mode === 'resume';
    s.startedAt = Date.now();
    s.portRetries = 0;
    s.refusals = 0;
    s.conn = new RawWs(target, handler, s, nextLocalPort());
  }
  if (p.pending === 0) {
    phase = null;
    const lat = p.latencies.sort((a, b) => a - b);
    p.done({
      ok: p.ok,
      resumed: p.resumed,
      failed: p.next - p.ok - p.resumed,
      notStarted: p.notStarted,
      errors: p.errors,
      retried,
      ms: Date.now() - p.startedAt,
      p50Ms: lat[Math.floor(lat.length * 0.5)] ?? 0,
      p99Ms: lat[Math.floor(lat.length * 0.99)] ?? 0,
    });
  }
}

function runPhase(queue: DeviceSession[], mode: 'hello' | 'resume'): Promise<PhaseResult> {
  return new Promise((resolve) => {
    retried = {};
    phase = {
      pending: queue.length,
      ok: 0,
      resumed: 0,
      errors: {},
      latencies: [],
      queue,
      next: 0,
      notStarted: 0,
      inFlight: 0,
      startedAt: Date.now(),
      mode,
      done: resolve,
    };
    pump();
  });
}

// Connections that hang (no Welcome) count as failed after connectTimeoutMs.
setInterval(() => {
  const now = Date.now();
  const p = phase;
  if (p === null) return;
  for (let i = 0; i < p.next && phase === p; i++) {
    const s = p.queue[i]!;
    // settle() may end the phase (phase becomes null): the loop stops with it.
    if (s.state === State.Connecting && now - s.startedAt > connectTimeoutMs) settle(s, 'timeout');
  }
}, 1000).unref();

// Heartbeat: every open session pings before the gateway's heartbeat window runs out.
let pingNonce = 1;
setInterval(() => {
  const now = Date.now();
  for (const s of sessions) {
    if (s.state === State.Open && now - s.lastSentAt >= pingEveryMs) {
      send(s, encodeBenchFrame({ kind: Kind.Ping, nonce: pingNonce++ }));
      pingsSent++;
    }
  }
}, 1000).unref();

// The "1 s after receiving" half of the ack rule (SPEC.md §5): every ackDelayMs, ack what is owed.
function flushDueAcks(): void {
  const due = ackDue;
  ackDue = [];
  for (const s of due) {
    s.ackQueued = false;
    sendAck(s);
  }
}

function stats(): ClientStats {
  let open = 0;
  for (const s of sessions) if (s.state === State.Open) open++;
  return {
    open,
    eventsReceived,
    eventsAcked,
    gaps,
    duplicates,
    pingsSent,
    pongs,
    closedByServer: { ...closedByServer },
    rssBytes: process.memoryUsage.rss(),
  };
}

function reply(r: ClientReply): void {
  process.send?.(r);
}

process.on('message', async (msg: ClientCommand) => {
  switch (msg.cmd) {
    case 'init': {
      target = msg.target;
      concurrency = msg.concurrency;
      ackEvery = msg.ackEvery;
      ackDelayMs = msg.ackDelayMs;
      setInterval(flushDueAcks, ackDelayMs).unref();
      connectTimeoutMs = msg.connectTimeoutMs;
      sessions = msg.devices.map(([imei, secret]) => ({
        imei,
        secret,
        state: State.Idle,
        conn: null,
        sessionId: '',
        resumeToken: '',
        lastSeq: 0,
        ackedSeq: 0,
        lastSentAt: 0,
        startedAt: 0,
        ackQueued: false,
        resuming: false,
        portRetries: 0,
        refusals: 0,
      }));
      reply({ id: msg.id, ok: true });
      return;
    }
    case 'connect': {
      const r = await runPhase(sessions.slice(msg.from, msg.to), 'hello');
      reply({ id: msg.id, phase: r });
      return;
    }
    case 'resume': {
      const r = await runPhase(
        sessions.filter((s) => s.sessionId !== '' && s.state === State.Closed),
        'resume',
      );
      reply({ id: msg.id, phase: r });
      return;
    }
    case 'drop': {
      let dropped = 0;
      for (const s of sessions) {
        if (dropped >= msg.max) break;
        if (s.state === State.Open && s.conn !== null) {
          const c = s.conn;
          s.state = State.Closed;
          s.conn = null;
          c.reset();
          dropped++;
        }
      }
      reply({ id: msg.id, dropped });
      return;
    }
    case 'abort': {
      const p = phase;
      if (p !== null) {
        p.notStarted += p.queue.length - p.next;
        p.pending -= p.queue.length - p.next;
        p.queue.length = p.next;
        pump();
      }
      reply({ id: msg.id, ok: true });
      return;
    }
    case 'flush-acks': {
      for (const s of sessions) sendAck(s);
      reply({ id: msg.id, stats: stats() });
      return;
    }
    case 'stats':
      reply({ id: msg.id, stats: stats() });
      return;
    case 'device-states':
      reply({
        id: msg.id,
        seqs: sessions.map((s) => s.lastSeq),
        open: sessions.map((s) => (s.state === State.Open ? 1 : 0)),
      });
      return;
    case 'close': {
      for (const s of sessions) {
        if (s.conn !== null) {
          const c = s.conn;
          s.state = State.Closed;
          s.conn = null;
          c.close();
        }
      }
      reply({ id: msg.id, ok: true });
      setTimeout(() => process.exit(0), 200);
      return;
    }
  }
});

process.on('disconnect', () => process.exit(0));

/**
 * The engine-independent heart of the edge (SPEC.md §5): turns frames from
 * carriers into session state, requests into bus requests, device messages
 * from the bus into sequenced events, and enforces the per-device limits.
 *
 * Scale notes. An idle session is a DeviceSession, its carrier, one map entry
 * and one bus subscription; no per-session timer exists: one sweep per edge
 * checks heartbeats, held long-poll GETs and resume windows. The bus handler
 * for device messages is one function for all sessions (it finds the session
 * by subject).
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { decodeFrame, encodeBatch, encodeFrame } from '../../device-protocol/codec.ts';
import { COMPRESSED_FRAME, DEFLATE, plainFrame } from '../../device-protocol/compression.ts';
import {
  ERROR_CODES,
  type ErrorCode,
  GatewayError,
  isErrorCode,
  toGatewayError,
} from '../../device-protocol/errors.ts';
import {
  type DecodeLimits,
  type Frame,
  type Hello,
  Kind,
  PROTOCOL_VERSION,
  type Request,
  type Resume,
  type Value,
} from '../../device-protocol/messages.ts';
import {
  type Bus,
  type BusMessage,
  type DeviceDirectory,
  type DeviceInfo,
  type DeviceMessage,
  type DeviceRouter,
  type DeviceSessionEvent,
  Subjects,
  type Subscription,
} from '../bus/bus.ts';
import { nullRecorder, type Recorder } from '../records/types.ts';
import type { TransportRequest } from '../transport/types.ts';
import { AuthLimiter } from './auth-limiter.ts';
import {
  authenticateHello,
  type DeviceTokens,
  imeiOfSessionId,
  isDeviceId,
  newResumeToken,
  newSessionId,
  sameSecret,
} from './auth.ts';
import {
  ACTIVE,
  AUTHENTICATING,
  CLOSED,
  type Carrier,
  type CarrierHost,
  OPENING,
  PollCarrier,
  WsCarrier,
} from './carriers.ts';
import { DeviceSession, type SessionSnapshot } from './device-session.ts';
import type { EngineHost, PollExchange, WsDriver } from './engines/engine.ts';
import {
  deviceDecodeLimits,
  type EdgeLimits,
  MAX_EARLY_FRAMES,
  MAX_INFLIGHT_REQUESTS,
  takeToken,
} from './limits.ts';
import { handlePoll } from './long-poll.ts';
import { byeFrame, DRAINING_MESSAGE, drainJitterMs, errorFrame } from './frames.ts';
import type { EdgeStats } from './metrics.ts';
import { SessionTable } from './session-table.ts';

const DEVICE_SUBJECT_PREFIX = Subjects.device('');
/**
 * Edges subscribe to device subjects in one queue group: while a claim moves a
 * session, the claimer and the holder are both subscribed for a moment, and a
 * queue group hands each event to one of them only (never twice).
 */
export const DEVICE_QUEUE = 'mmgw.edge';
/** How often a device message may be passed on to the edge that now holds the session. */
const MAX_FORWARD_HOPS = 3;
/**
 * A claim may be passed on more often: in a reconnect storm the queue group can
 * hand it back to its own sender (subscribed while it waits) several times in a
 * row before it reaches the edge that now holds the session; each hop is one
 * bus round trip, and failing it would lose the session.
 */
const MAX_CLAIM_HOPS = 12;
/** A holder hands a session over only if the claim's answer can still reach its sender this long before it gives up. */
const CLAIM_MARGIN_MS = 2000;

/** The answer to a device's request, passed on to the edge the session moved to meanwhile. */
interface AnswerMessage {
  type: 'answer';
  sessionId: string;
  id: string;
  body?: unknown;
  error?: { code: string; message: string; retryable?: boolean; retryAfterMs?: number };
  hops?: number;
}

/**
 * What edges send each other on a device subject: the bus contract's
 * DeviceMessage, plus a hop count on passed-on messages, `poll` on a claim made
 * by a long-poll request (the holder then ends its poll carrier quietly), and
 * the edge-internal 'answer'.
 */
type EdgeDeviceMessage = (DeviceMessage & { hops?: number; poll?: boolean }) | AnswerMessage;
/** A claim waits this many bus timeouts for the holder's answer (the Resume that asked waits one). */
const CLAIM_PATIENCE = 10;
/** Most poll tombstones kept (last frames for long-poll devices that had no GET held). */
const MAX_TOMBSTONES = 10_000;

export interface EdgeCoreOptions {
  bus: Bus;
  nodeId: string;
  directory: DeviceDirectory;
  router: DeviceRouter;
  tokens: DeviceTokens;
  heartbeatMs: number;
  resumeWindowMs: number;
  requestTimeoutMs: number;
  /** Compress WebSocket carriers of devices that ask (SPEC.md §4.4); default true. */
  compression?: boolean;
  /** A carrier that compressed or inflated nothing for this long parks its contexts (~1 KiB each); default 30 s. */
  compressionIdleMs?: number;
  /** How long a takeover or claim waits for the edge holding the session. */
  busTimeoutMs: number;
  limits: EdgeLimits;
  logger: Logger;
  now: () => number;
  stats: EdgeStats;
  /** Per-device log records and usage counters; nullRecorder when absent. */
  recorder?: Recorder;
  /** Failed-authentication limits; the defaults of auth-limiter.ts when absent. */
  authLimiter?: AuthLimiter;
}

/** Usage bytes of sessions are written at least this often (and when a carrier closes), never per frame. */
const USAGE_FLUSH_MS = 60_000;

interface Tombstone {
  token: string;
  status: number;
  frame: Uint8Array;
  at: number;
}

export class EdgeCore implements EngineHost, CarrierHost {
  readonly table = new SessionTable();
  readonly limits: EdgeLimits;
  readonly decodeLimits: DecodeLimits;
  readonly stats: EdgeStats;
  readonly logger: Logger;
  readonly now: () => number;
  /** Set by startEdge once the engine exists (carriers are created only after that). */
  wsDriver!: WsDriver;
  draining = false;
  closed = false;
  /** Identifies this edge instance in takeover/claim messages (several workers may share a node id). */
  readonly instanceId: string;

  private readonly bus: Bus;
  private readonly directory: DeviceDirectory;
  private readonly router: DeviceRouter;
  private readonly tokens: DeviceTokens;
  private readonly heartbeatMs: number;
  private readonly silenceMs: number;
  private readonly resumeWindowMs: number;
  private readonly requestTimeoutMs: number;
  private readonly busTimeoutMs: number;
  private readonly compression: boolean;
  private readonly compressionIdleMs: number;
  /** Carriers without a session yet (opening or authenticating). */
  private readonly unattached = new Set<Carrier>();
  private readonly claims = new Map<string, Promise<DeviceSession>>();
  /** Claims in progress by IMEI: device messages that reach this edge meanwhile wait for them. */
  private readonly claiming = new Map<string, Promise<DeviceSession>>();
  private readonly tombstones = new Map<string, Tombstone>();
  private pollFlushes: PollCarrier[] = [];
  private pollFlushScheduled = false;
  private wsFlushes: WsCarrier[] = [];
  private wsFlushScheduled = false;
  private sweepTimer: ReturnType<typeof setInterval> | undefined;
  private readonly recorder: Recorder;
  readonly authLimiter: AuthLimiter;
  private lastUsageFlush: number;

  constructor(o: EdgeCoreOptions) {
    this.recorder = o.recorder ?? nullRecorder;
    this.authLimiter = o.authLimiter ?? new AuthLimiter();
    this.lastUsageFlush = o.now();
    this.bus = o.bus;
    this.directory = o.directory;
    this.router = o.router;
    this.tokens = o.tokens;
    this.heartbeatMs = o.heartbeatMs;
    this.silenceMs = o.heartbeatMs * 2.5;
    this.resumeWindowMs = o.resumeWindowMs;
    this.requestTimeoutMs = o.requestTimeoutMs;
    this.compression = o.compression ?? true;
    this.compressionIdleMs = o.compressionIdleMs ?? 30_000;
    this.busTimeoutMs = o.busTimeoutMs;
    this.limits = o.limits;
    this.decodeLimits = deviceDecodeLimits(o.limits);
    this.logger = o.logger;
    this.now = o.now;
    this.stats = o.stats;
    this.instanceId = `${o.nodeId}~${randomBytes(4).toString('hex')}`;
    this.stats.sessions = () => this.table.size;
    this.stats.compressionContexts = () => {
      let n = 0;
      for (const session of this.table.values()) n += session.carrier?.compression?.contexts() ?? 0;
      return n;
    };
  }

  get sessionCount(): number {
    return this.table.size;
  }

  /** Sessions with a carrier attached (devices online now); one pass over the table. */
  get connectedCount(): number {
    let n = 0;
    for (const s of this.table.values()) if (s.carrier !== undefined) n++;
    return n;
  }

  /** Starts the one sweep timer of this edge. */
  start(): void {
    const tick = Math.min(1000, Math.max(50, Math.floor(this.heartbeatMs / 4)));
    this.sweepTimer = setInterval(this.sweep, tick);
    this.sweepTimer.unref();
  }

  // ---------------------------------------------------------------------------
  // Engine entry points

  newWsCarrier(): WsCarrier {
    return new WsCarrier(this);
  }

  wsOpen(c: WsCarrier, socket: unknown): void {
    c.socket = socket;
    c.lastHeardAt = this.now();
    if (this.draining) {
      this.bye(c, 'session.draining', DRAINING_MESSAGE, true, drainJitterMs());
      return;
    }
    this.unattached.add(c);
  }

  wsMessage(c: WsCarrier, bytes: Uint8Array, isBinary: boolean): void {
    if (c.state === CLOSED) return;
    try {
      if (!isBinary) {
        this.stats.framesIn++;
        this.stats.bytesIn += bytes.length;
        this.fatal(c, 'protocol.bad_frame', 'Text messages are not frames; send binary messages.');
        return;
      }
      this.receive(c, bytes);
    } catch (err) {
      this.internalError(c, err);
    }
  }

  wsDrain(c: WsCarrier): void {
    c.onDrain();
  }

  wsClosed(c: WsCarrier): void {
    c.state = CLOSED;
    this.release(c, 'carrier.closed');
    c.socket = undefined;
  }

  poll(ex: PollExchange): void {
    try {
      handlePoll(this, ex);
    } catch (err) {
      this.logger.error({ err }, 'edge internal error (long-poll)');
      const p = ex.carrier;
      if (p !== undefined) this.internalError(p, err);
      ex.respond(503, encodeBatch([errorFrame('internal', 'An internal error occurred.')]));
    }
  }

  addUnattached(c: Carrier): void {
    this.unattached.add(c);
  }

  // ---------------------------------------------------------------------------
  // Frames from devices

  /**
   * One frame's bytes from a carrier: size, rate, decode, then dispatch.
   * Returns false when the carrier closed because of it.
   */
  receive(c: Carrier, bytes: Uint8Array): boolean {
    if (c.state === CLOSED) return false;
    this.stats.framesIn++;
    this.stats.bytesIn += bytes.length;
    if (c.session !== undefined) c.session.bytesIn += bytes.length;
    const now = this.now();
    if (bytes.length > this.limits.maxFrameBytes) {
      this.fatal(
        c,
        'protocol.frame_too_large',
        `A frame of ${bytes.length} bytes exceeds the limit of ${this.limits.maxFrameBytes}.`,
      );
      return false;
    }
    if (!takeToken(c, this.limits, now)) {
      this.fatal(c, 'session.rate_limited', 'Too many frames per second.', 1000);
      return false;
    }
    c.lastHeardAt = now;
    let frameBytes = bytes;
    if (bytes[0] === COMPRESSED_FRAME) {
      try {
        frameBytes = plainFrame(bytes, c.compression, this.limits.maxFrameBytes);
        c.compressedAt = now;
      } catch (err) {
        if (!(err instanceof GatewayError)) throw err;
        this.fatal(c, err.code, err.message);
        return false;
      }
    }
    const decoded = decodeFrame(frameBytes, this.decodeLimits);
    if (!decoded.ok) {
      this.fatal(c, decoded.error.code, decoded.error.message);
      return false;
    }
    this.onFrame(c, decoded.frame);
    return c.state !== CLOSED;
  }

  /** A long-poll request counts against the frame rate like a frame (a spinning client is limited too). */
  pollRequestAllowed(c: PollCarrier): boolean {
    const now = this.now();
    c.lastHeardAt = now;
    if (takeToken(c, this.limits, now)) return true;
    this.fatal(c, 'session.rate_limited', 'Too many requests per second.', 1000);
    return false;
  }

  private onFrame(c: Carrier, f: Frame): void {
    if (c.state === OPENING) {
      if (f.kind === Kind.Hello) this.hello(c, f).catch((err) => this.internalError(c, err));
      else if (f.kind === Kind.Resume) this.resume(c, f).catch((err) => this.internalError(c, err));
      else this.fatal(c, 'protocol.bad_state', 'The first frame must be Hello or Resume.');
      return;
    }
    if (c.state === AUTHENTICATING) {
      c.early ??= [];
      if (c.early.length >= MAX_EARLY_FRAMES) {
        this.fatal(c, 'protocol.bad_state', 'Too many frames before Welcome.');
        return;
      }
      c.early.push(f);
      return;
    }
    if (c.state !== ACTIVE) return;
    const session = c.session!;
    switch (f.kind) {
      case Kind.Ack:
        session.ack(f.seq);
        return;
      case Kind.Ping:
        c.control(encodeFrame({ kind: Kind.Pong, nonce: f.nonce }));
        return;
      case Kind.Pong:
        return;
      case Kind.Request:
        this.request(c, session, f);
        return;
      case Kind.Bye:
        // The device logs out: nothing to keep for a Resume.
        this.endSession(session, 'session.logout', 'The device ended its session.', false);
        return;
      default:
        this.fatal(c, 'protocol.bad_state', `A ${Kind[f.kind] ?? 'frame'} frame is not valid here.`);
    }
  }

  // ---------------------------------------------------------------------------
  // Hello, Resume, Welcome

  private async hello(c: Carrier, h: Hello): Promise<void> {
    c.state = AUTHENTICATING;
    if (this.draining) {
      this.bye(c, 'session.draining', DRAINING_MESSAGE, true, drainJitterMs());
      return;
    }
    if (h.version !== PROTOCOL_VERSION) {
      this.refuse(c, h.imei, new GatewayError('protocol.unsupported_version'));
      return;
    }
    const address = this.addressOf(c);
    const limitKey = isDeviceId(h.imei) ? h.imei : undefined;
    if (this.authRateLimited(c, limitKey, address)) return;
    let info: DeviceInfo;
    try {
      info = await authenticateHello(h, this.directory, this.tokens);
    } catch (err) {
      this.authFailed(limitKey, address, err);
      this.refuse(c, h.imei, err);
      return;
    }
    if (c.state === CLOSED) return;
    const imei = h.imei;
    const sessionId = newSessionId(imei);
    const local = this.table.get(imei);
    if (local !== undefined) {
      this.endSession(local, 'session.replaced', 'A newer connection of this device took over.', false);
    } else {
      await this.takeoverElsewhere(imei, sessionId);
    }
    // Another Hello of the same device may have won the race meanwhile: the newest wins.
    const again = this.table.get(imei);
    if (again !== undefined) {
      this.endSession(again, 'session.replaced', 'A newer connection of this device took over.', false);
    }
    if (c.state === CLOSED || this.closed) return;
    const session = new DeviceSession(sessionId, imei, newResumeToken());
    session.operator = info.operator;
    session.keyEpoch = info.keyEpoch;
    if (h.caps !== undefined) session.caps = h.caps;
    this.addSession(session);
    this.logger.debug({ imei, sessionId, carrier: c.kind }, 'session opened');
    const at = this.now();
    this.recorder.log({ at, imei, kind: 'connect', service: 'session', detail: { carrier: c.kind } });
    this.recorder.usage({ at, imei, operator: info.operator, service: 'session', logins: 1 });
    this.attach(c, session, false, 0);
  }

  /** Asks whoever holds a session of this device (another edge or worker) to end it. */
  private async takeoverElsewhere(imei: string, sessionId: string): Promise<void> {
    const msg: DeviceMessage = { type: 'takeover', sessionId, byNode: this.instanceId };
    try {
      await this.bus.request(Subjects.device(imei), msg, { timeoutMs: this.busTimeoutMs });
    } catch (err) {
      const code = toGatewayError(err).code;
      // no_responders: nobody holds a session of this device, the usual case.
      if (code !== 'bus.no_responders')
        this.logger.warn({ imei, code }, 'takeover request failed; continuing');
    }
  }

  private async resume(c: Carrier, r: Resume): Promise<void> {
    c.state = AUTHENTICATING;
    if (this.draining) {
      this.bye(c, 'session.draining', DRAINING_MESSAGE, true, drainJitterMs());
      return;
    }
    const imei = imeiOfSessionId(r.sessionId);
    const address = this.addressOf(c);
    if (this.authRateLimited(c, imei, address)) return;
    if (imei === undefined || r.version !== PROTOCOL_VERSION) {
      const g = new GatewayError('auth.resume_failed', 'Unknown session.');
      this.authFailed(imei, address, g);
      this.refuse(c, undefined, g);
      return;
    }
    let session: DeviceSession;
    try {
      session = await this.findForResume(imei, r.sessionId, r.resumeToken);
      const info = await this.directory.lookup(imei);
      if (info.keyEpoch !== undefined) session.keyEpoch = info.keyEpoch;
    } catch (err) {
      const g = toGatewayError(err);
      if (g.code.startsWith('auth.')) {
        this.authFailed(imei, address, g);
        const s = this.table.getById(r.sessionId);
        // The device is gone or disabled: its session ends with it.
        if (s !== undefined && g.code !== 'auth.resume_failed') this.endSession(s, g.code, g.message, false);
        this.refuse(c, imei, g);
        return;
      }
      // The registry is unreachable: an authenticated session may continue (fail open for resumes only).
      this.logger.warn(
        { imei, code: g.code },
        'resume hit a bus or registry error; continuing only if the session is here',
      );
      const s = this.table.getById(r.sessionId);
      if (s === undefined) {
        this.refuse(c, imei, g);
        return;
      }
      session = s;
    }
    if (c.state === CLOSED || this.closed) return;
    if (session.ended || this.table.get(imei) !== session) {
      this.refuse(c, imei, new GatewayError('auth.resume_failed', 'The session ended meanwhile.'));
      return;
    }
    if (r.lastSeq > session.lastSeq || r.lastSeq < session.ackedSeq) {
      this.refuse(
        c,
        imei,
        new GatewayError(
          'auth.resume_failed',
          `lastSeq ${r.lastSeq} is outside what this session holds (${session.ackedSeq}..${session.lastSeq}).`,
        ),
      );
      return;
    }
    this.stats.resumes++;
    const at = this.now();
    this.recorder.log({ at, imei, kind: 'resume', service: 'session', detail: { carrier: c.kind } });
    if (session.via !== undefined && session.via !== c.kind) {
      this.recorder.log({
        at,
        imei,
        kind: 'carrier_switch',
        service: 'session',
        message: `carrier ${session.via} → ${c.kind}`,
        detail: { from: session.via, to: c.kind },
      });
    }
    this.logger.debug(
      { imei, sessionId: session.id, carrier: c.kind, lastSeq: r.lastSeq },
      'session resumed',
    );
    this.attach(c, session, true, r.lastSeq);
  }

  /** The session to resume: here, or claimed from the edge that holds it. Throws auth.resume_failed. */
  private async findForResume(
    imei: string,
    sessionId: string,
    resumeToken: string,
    poll = false,
  ): Promise<DeviceSession> {
    const local = this.table.getById(sessionId);
    if (local !== undefined) {
      if (!sameSecret(local.resumeToken, resumeToken)) throw new GatewayError('auth.resume_failed');
      local.resumedAt = Date.now();
      return local;
    }
    // Two resumes of the same unknown session at once share one claim.
    let pending = this.claims.get(sessionId);
    if (pending === undefined) {
      pending = this.claim(imei, sessionId, resumeToken, poll).finally(() => {
        this.claims.delete(sessionId);
        if (this.claiming.get(imei) === pending) this.claiming.delete(imei);
      });
      this.claims.set(sessionId, pending);
      this.claiming.set(imei, pending);
      pending.catch(() => undefined); // may settle after this Resume stopped waiting (below)
    }
    const session = await this.waitForClaim(pending);
    if (!sameSecret(session.resumeToken, resumeToken)) throw new GatewayError('auth.resume_failed');
    session.resumedAt = Date.now();
    return session;
  }

  /**
   * A Resume waits busTimeoutMs for its claim, then is refused as retryable
   * bus.timeout; the claim itself goes on (CLAIM_PATIENCE × longer). The holder
   * may answer late, overloaded in a reconnect storm, after it already handed
   * the session over: giving up on that answer would lose the session. A late
   * snapshot is installed here (detached) and the device's retried Resume finds
   * it, on this edge or by a claim from another.
   */
  private waitForClaim(pending: Promise<DeviceSession>): Promise<DeviceSession> {
    return new Promise<DeviceSession>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(
          new GatewayError('bus.timeout', 'The session is busy elsewhere; resume again shortly.', {
            retryable: true,
            retryAfterMs: 500 + Math.floor(Math.random() * 1500),
          }),
        );
      }, this.busTimeoutMs);
      pending.then(
        (s) => {
          clearTimeout(timer);
          resolve(s);
        },
        (err) => {
          clearTimeout(timer);
          reject(err);
        },
      );
    });
  }

  private async claim(
    imei: string,
    sessionId: string,
    resumeToken: string,
    poll: boolean,
  ): Promise<DeviceSession> {
    const msg: EdgeDeviceMessage = {
      type: 'claim',
      sessionId,
      resumeToken,
      byNode: this.instanceId,
      issuedAt: Date.now(),
      // Wall-clock time after which the holder must not hand the session over any more: this
      // edge stops listening for the answer at the request's timeout (margin for the reply's way).
      expiresAt:
        Date.now() +
        this.busTimeoutMs * CLAIM_PATIENCE -
        Math.min(CLAIM_MARGIN_MS, (this.busTimeoutMs * CLAIM_PATIENCE) / 4),
      ...(poll ? { poll: true } : {}),
    };
    // The request leaves before this edge subscribes (so that the claim cannot reach this edge
    // itself), and the subscription exists before the holder lets go (so that no event meanwhile
    // finds nobody: those that reach this edge wait for the claim, see onDeviceMessage).
    const asked = this.bus.request<SessionSnapshot>(Subjects.device(imei), msg, {
      timeoutMs: this.busTimeoutMs * CLAIM_PATIENCE,
    });
    let sub: Subscription;
    try {
      sub = this.bus.subscribe(Subjects.device(imei), this.onDeviceMessage, { queue: DEVICE_QUEUE });
    } catch (err) {
      asked.catch(() => undefined); // the bus is closing: nobody waits for this answer any more
      throw new GatewayError('auth.resume_failed', 'The session could not be taken over.', { cause: err });
    }
    try {
      return await this.installClaimed(imei, sessionId, asked, sub);
    } catch (err) {
      sub.unsubscribe();
      throw err;
    }
  }

  private async installClaimed(
    imei: string,
    sessionId: string,
    asked: Promise<SessionSnapshot>,
    sub: Subscription,
  ): Promise<DeviceSession> {
    let snapshot: SessionSnapshot;
    try {
      snapshot = await asked;
    } catch (err) {
      const code = toGatewayError(err).code;
      if (code === 'bus.timeout') {
        // The holder may be alive but overloaded (a reconnect storm): the session is
        // probably still there, so the device is told to come back, not to start afresh.
        this.logger.warn({ imei, code }, 'session claim timed out; device asked to retry');
        throw new GatewayError('bus.timeout', 'The session is busy elsewhere; resume again shortly.', {
          cause: err,
          retryable: true,
          retryAfterMs: 500 + Math.floor(Math.random() * 1500),
        });
      }
      if (code !== 'bus.no_responders' && code !== 'auth.resume_failed') {
        this.logger.warn({ imei, code }, 'session claim failed');
      }
      throw new GatewayError('auth.resume_failed', 'The session is not known here or elsewhere.', {
        cause: err,
      });
    }
    let session: DeviceSession;
    try {
      session = DeviceSession.fromSnapshot(snapshot);
    } catch (err) {
      throw new GatewayError('auth.resume_failed', 'The session could not be taken over.', { cause: err });
    }
    if (session.id !== sessionId || session.imei !== imei || this.closed) {
      throw new GatewayError('auth.resume_failed', 'The session could not be taken over.');
    }
    if (this.table.get(imei) !== undefined) {
      // A newer session of the device started here meanwhile; the claimed one is older.
      throw new GatewayError('auth.resume_failed', 'A newer session of this device exists.');
    }
    session.detachedAt = this.now();
    this.addSession(session, sub);
    this.logger.debug({ imei, sessionId }, 'session claimed from another edge');
    return session;
  }

  /** Puts a carrier on a session and sends Welcome plus the replay. */
  private attach(c: Carrier, session: DeviceSession, resumed: boolean, lastSeq: number): void {
    if (this.draining) {
      this.bye(c, 'session.draining', DRAINING_MESSAGE, true, drainJitterMs());
      return;
    }
    const old = session.carrier;
    if (old !== undefined && old !== c) {
      old.finish(
        byeFrame('session.moved', 'The session moved to another connection.', true),
        'session.moved',
        true,
      );
    }
    this.unattached.delete(c);
    session.carrier = c;
    session.detachedAt = 0;
    session.via = c.kind;
    c.session = session;
    c.state = ACTIVE;
    // Poll requests carry only the session headers: once the session continues on a new
    // long-poll carrier, the last frame kept for the old one must not end the new one.
    if (c.kind === 'poll') this.tombstones.delete(session.id);
    if (resumed) session.ack(lastSeq);
    const { token, expiresAt } = this.tokens.issue(session.imei, session.id, session.keyEpoch);
    const compress =
      this.compression && c.kind === 'ws' && session.caps?.compression?.includes(DEFLATE) === true;
    const welcome = encodeFrame({
      kind: Kind.Welcome,
      sessionId: session.id,
      resumeToken: session.resumeToken,
      token,
      tokenExpiresAt: expiresAt,
      heartbeatMs: this.heartbeatMs,
      resumed,
      lastSeq: session.lastSeq,
      resumeWindowMs: this.resumeWindowMs,
      maxFrameBytes: this.limits.maxFrameBytes,
      serverTime: this.now(),
      ...(compress ? { compression: DEFLATE } : {}),
    });
    c.welcome(welcome, (resumed ? lastSeq : 0) + 1, compress);
    // The device's transport node brings its backend sessions back (no new login needed).
    this.publishSession(Subjects.sessionUp, session);
    const early = c.early;
    c.early = undefined;
    if (early !== undefined) {
      for (const f of early) {
        if (c.state !== ACTIVE) break;
        this.onFrame(c, f);
      }
    }
  }

  /**
   * Puts a long-poll carrier on a detached session without a Welcome: a poll
   * request with the right session headers continues where the device left
   * off (a flaky network may let the carrier time out between two polls).
   */
  attachPollQuietly(session: DeviceSession): PollCarrier {
    const p = new PollCarrier(this);
    this.tombstones.delete(session.id);
    session.carrier = p;
    session.detachedAt = 0;
    p.session = session;
    p.state = ACTIVE;
    p.sentSeq = session.ackedSeq;
    return p;
  }

  private addSession(session: DeviceSession, sub?: Subscription): void {
    this.table.add(session);
    session.sub =
      sub ?? this.bus.subscribe(Subjects.device(session.imei), this.onDeviceMessage, { queue: DEVICE_QUEUE });
  }

  /**
   * A long-poll request for a session this edge does not hold (SPEC.md §4.2):
   * worker processes share the port, so a device's requests may land on any of
   * them. The session is claimed from the edge that holds it (the resume token
   * authorises it, as for Resume), then the request is served here. The
   * session stays here until a request of the device lands elsewhere.
   */
  pollMiss(ex: PollExchange): boolean {
    const imei = imeiOfSessionId(ex.sessionId);
    if (imei === undefined || ex.token === '' || ex.claimed === true) return false;
    ex.claimed = true;
    this.findForResume(imei, ex.sessionId, ex.token, true).then(
      () => {
        if (ex.aborted && ex.method !== 'POST') return;
        this.poll(ex);
      },
      () => {
        // Not known anywhere (expired, replaced) or a wrong token: the same answer as a local miss.
        this.poll(ex);
      },
    );
    return true;
  }

  // ---------------------------------------------------------------------------
  // Ending carriers and sessions

  /**
   * A carrier is gone: its session (if it still has this carrier) is detached
   * and kept for resume. `code` says why (recorded; undefined: not recorded,
   * the session only moved to another edge).
   */
  release(c: Carrier, code: string | undefined): void {
    this.unattached.delete(c);
    const s = c.session;
    if (s === undefined || s.carrier !== c) return;
    s.carrier = undefined;
    s.detachedAt = this.now();
    if (code !== undefined) {
      this.recorder.log({
        at: s.detachedAt,
        imei: s.imei,
        kind: 'disconnect',
        service: 'session',
        code,
        detail: { carrier: c.kind },
      });
    }
    this.flushUsage(s);
  }

  /** Writes the session's byte counts to the usage records (on carrier close, session end, and every minute). */
  private flushUsage(s: DeviceSession): void {
    if (s.bytesIn === 0 && s.bytesOut === 0) return;
    this.recorder.usage({
      at: this.now(),
      imei: s.imei,
      ...(s.operator === undefined ? {} : { operator: s.operator }),
      service: 'session',
      bytesIn: s.bytesIn,
      bytesOut: s.bytesOut,
    });
    s.bytesIn = 0;
    s.bytesOut = 0;
  }

  /** The source address of a carrier ('' when the engine cannot tell), IPv4-mapped IPv6 as IPv4. */
  private addressOf(c: Carrier): string {
    let address: string;
    if (c.kind === 'ws') {
      const socket = (c as WsCarrier).socket;
      address = socket === undefined ? '' : this.wsDriver.remoteAddress(socket);
    } else {
      const p = c as PollCarrier;
      address = p.opening?.remoteAddress ?? p.current?.remoteAddress ?? '';
    }
    return address.startsWith('::ffff:') ? address.slice(7) : address;
  }

  /** Refuses with auth.rate_limited when the device or the address failed too often lately. */
  private authRateLimited(c: Carrier, imei: string | undefined, address: string): boolean {
    const waitMs = this.authLimiter.check(imei, address, this.now());
    if (waitMs <= 0) return false;
    this.refuse(c, imei, new GatewayError('auth.rate_limited', undefined, { retryAfterMs: waitMs }));
    return true;
  }

  /** Counts a refused authentication against the attempt limits (not a registry outage, not a limit hit). */
  private authFailed(imei: string | undefined, address: string, err: unknown): void {
    const code = toGatewayError(err).code;
    if (code.startsWith('auth.') && code !== 'auth.rate_limited') {
      this.authLimiter.fail(imei, address, this.now());
    }
  }

  /** Fatal Error on one carrier; the session (if any) is detached, not ended, so the device may resume. */
  fatal(c: Carrier, code: string, message: string, retryAfterMs?: number, quiet = false): void {
    if (c.state === CLOSED) return;
    const frame = errorFrame(code, message, retryAfterMs);
    if (!quiet && code !== 'session.heartbeat_timeout') {
      this.logger.info(
        { imei: c.session?.imei, carrier: c.kind, code },
        'carrier closed by a limit or error',
      );
    }
    c.finish(frame, code, false);
    this.release(c, code);
  }

  private bye(
    c: Carrier,
    code: string,
    message: string,
    resumable: boolean,
    reconnectAfterMs?: number,
  ): void {
    if (c.state === CLOSED) return;
    c.finish(byeFrame(code, message, resumable, reconnectAfterMs), code, true);
    this.release(c, code);
  }

  /** An authentication refusal: fatal Error with the code, counted and logged (never the secret or token). */
  private refuse(c: Carrier, imei: string | undefined, err: unknown): void {
    const g = toGatewayError(err);
    if (g.code.startsWith('auth.')) {
      this.stats.authFailed(g.code);
      if (isDeviceId(imei)) {
        this.recorder.log({
          at: this.now(),
          imei,
          kind: 'auth_failure',
          service: 'session',
          code: g.code,
          detail: { carrier: c.kind },
        });
      }
    }
    const cause = (g as { cause?: unknown }).cause;
    this.logger.info(
      {
        imei,
        carrier: c.kind,
        code: g.code,
        reason: g.message,
        ...(cause === undefined ? {} : { cause: toGatewayError(cause).code }),
      },
      'device refused',
    );
    this.fatal(c, g.code, g.message, g.retryAfterMs, true);
  }

  /** A bug, not a device's fault: logged, and the carrier closed with 'internal' (never the process). */
  private internalError(c: Carrier, err: unknown): void {
    this.logger.error({ err, imei: c.session?.imei, carrier: c.kind }, 'edge internal error');
    this.fatal(c, 'internal', 'An internal error occurred.', undefined, true);
  }

  backpressure(c: WsCarrier): void {
    this.fatal(c, 'session.backpressure', 'The device read too slowly; resume to continue.');
  }

  private publishSession(subject: string, s: DeviceSession): void {
    const event: DeviceSessionEvent = { deviceId: s.imei, sessionId: s.id };
    try {
      this.bus.publish(subject, event);
    } catch (err) {
      this.logger.debug({ imei: s.imei, err }, 'session event not published');
    }
  }

  endSession(s: DeviceSession, code: string, message: string, resumable: boolean, quiet = false): void {
    if (s.ended) return;
    s.ended = true;
    this.table.remove(s);
    s.sub?.unsubscribe();
    s.sub = undefined;
    const c = s.carrier;
    if (c !== undefined) {
      if (quiet && c.kind === 'poll') {
        (c as PollCarrier).moveAway();
        this.release(c, undefined);
      } else {
        this.bye(c, code, message, resumable);
      }
    }
    s.carrier = undefined;
    this.flushUsage(s);
    if (!s.moved) {
      // The device's transport node lets its backend sessions linger (CSI inactive).
      this.publishSession(Subjects.sessionDown, s);
      const at = this.now();
      if (code === 'session.replaced') {
        this.recorder.log({ at, imei: s.imei, kind: 'takeover', service: 'session', code });
      }
      this.recordLogout(s, at, code);
    }
    this.logger.debug({ imei: s.imei, sessionId: s.id, code }, 'session ended');
  }

  /**
   * A logout is the end of a session, never a carrier drop: one per login
   * (Hello), like an accounting stop record. A device that goes away without
   * coming back is logged out when its resume window lapses (`session.expired`);
   * a session that moves to another edge is not logged out (it goes on there).
   */
  private recordLogout(s: DeviceSession, at: number, code: string): void {
    this.recorder.log({ at, imei: s.imei, kind: 'logout', service: 'session', code });
    this.recorder.usage({
      at,
      imei: s.imei,
      ...(s.operator === undefined ? {} : { operator: s.operator }),
      service: 'session',
      logouts: 1,
    });
  }

  // ---------------------------------------------------------------------------
  // Sequenced frames

  /**
   * Gives a frame the session's next seq, keeps it for replay and hands it to
   * the carrier. Throws request.bad_input when the frame cannot be encoded,
   * session.backpressure when the replay buffer would overflow (the session
   * is then ended: the device must start anew and re-sync from its cursors).
   */
  private appendSequenced(s: DeviceSession, frame: Frame): number {
    const seq = s.nextSeq;
    (frame as { seq: number }).seq = seq;
    let bytes: Uint8Array;
    try {
      bytes = encodeFrame(frame);
    } catch (err) {
      throw new GatewayError('request.bad_input', 'The frame cannot be encoded for the device.', {
        cause: err,
      });
    }
    if (
      s.replayFrames + 1 > this.limits.maxReplayFrames ||
      s.replayBytes + bytes.length > this.limits.maxReplayBytes
    ) {
      this.logger.info({ imei: s.imei, sessionId: s.id, unacked: s.replayFrames }, 'replay buffer overflow');
      this.endSession(
        s,
        'session.backpressure',
        'Too many unacknowledged frames; start a new session.',
        false,
      );
      throw new GatewayError(
        'session.backpressure',
        'The device session overflowed its replay buffer and ended.',
      );
    }
    s.append(bytes);
    s.carrier?.appended(seq);
    return seq;
  }

  // ---------------------------------------------------------------------------
  // Requests

  private request(c: Carrier, s: DeviceSession, r: Request): void {
    const answered = s.answerSeq(r.id);
    if (answered !== undefined) {
      c.resend(answered);
      return;
    }
    if (s.isInflight(r.id)) return; // the answer will come once
    if (s.inflightCount >= MAX_INFLIGHT_REQUESTS) {
      this.answerError(
        s,
        r.id,
        new GatewayError('request.unavailable', 'Too many requests in progress.', {
          retryable: true,
          retryAfterMs: 1000,
        }),
      );
      return;
    }
    const nodeId = this.router.pick(s.imei);
    if (nodeId === undefined) {
      this.answerError(
        s,
        r.id,
        new GatewayError('request.unavailable', undefined, { retryable: true, retryAfterMs: 1000 }),
      );
      return;
    }
    s.startRequest(r.id);
    const tr: TransportRequest = {
      deviceId: s.imei,
      sessionId: s.id,
      id: r.id,
      method: r.method,
      ...(r.body === undefined ? {} : { body: r.body }),
      ...(s.caps === undefined ? {} : { caps: s.caps }),
    };
    const id = r.id;
    this.bus
      .request<Value | undefined>(Subjects.transportRequest(nodeId), tr, { timeoutMs: this.requestTimeoutMs })
      .then(
        (body) => this.answer(s, id, body),
        (err) => {
          s.finishRequest(id);
          this.answerError(s, id, err);
        },
      );
  }

  private answer(s: DeviceSession, id: string, body: Value | undefined): void {
    s.finishRequest(id);
    if (s.ended) {
      // Moved to another edge meanwhile: the answer follows it. Otherwise the device resends
      // the request in its next session.
      if (s.moved)
        this.passAnswerOn(s, { type: 'answer', sessionId: s.id, id, ...(body == null ? {} : { body }) });
      return;
    }
    if (s.answerSeq(id) !== undefined) return; // answered already (an answer passed on from another edge)
    let seq: number;
    try {
      seq = this.appendSequenced(s, { kind: Kind.Response, seq: 0, id, ...(body == null ? {} : { body }) });
    } catch (err) {
      if (!s.ended) this.answerError(s, id, err);
      return;
    }
    s.rememberAnswer(id, seq);
  }

  private answerError(s: DeviceSession, id: string, err: unknown): void {
    const g = toGatewayError(err);
    if (s.ended) {
      if (s.moved) {
        const error = {
          code: g.code,
          message: g.message,
          retryable: g.retryable,
          ...(g.retryAfterMs === undefined ? {} : { retryAfterMs: g.retryAfterMs }),
        };
        this.passAnswerOn(s, { type: 'answer', sessionId: s.id, id, error });
      }
      return;
    }
    if (s.answerSeq(id) !== undefined) return;
    let code: ErrorCode = g.code;
    let retryable = g.retryable;
    if (code === 'bus.timeout') code = 'request.timeout';
    else if (code === 'bus.no_responders' || code === 'bus.closed') code = 'request.unavailable';
    if (code === 'request.timeout' || code === 'request.unavailable') retryable = true;
    if (!isErrorCode(code)) code = 'internal';
    let seq: number;
    try {
      seq = this.appendSequenced(s, {
        kind: Kind.Error,
        seq: 0,
        id,
        code,
        message: code === g.code ? g.message : ERROR_CODES[code],
        fatal: false,
        ...(g.retryAfterMs === undefined ? {} : { retryAfterMs: g.retryAfterMs }),
      });
    } catch {
      return;
    }
    // A retryable failure is not remembered: the device's retry with the same id runs again.
    if (!retryable) s.rememberAnswer(id, seq);
  }

  private passAnswerOn(s: DeviceSession, m: AnswerMessage): void {
    this.bus.request(Subjects.device(s.imei), m, { timeoutMs: this.busTimeoutMs }).catch((err) => {
      this.logger.debug(
        { imei: s.imei, sessionId: s.id, code: toGatewayError(err).code },
        'answer for a moved session not delivered',
      );
    });
  }

  /** An answer passed on by the edge that started the request before the session moved here. */
  private answerPassedOn(s: DeviceSession, m: AnswerMessage): void {
    if (typeof m.id !== 'string') throw new GatewayError('bus.bad_message', 'An answer needs an id.');
    if (m.error === undefined) {
      this.answer(s, m.id, m.body as Value | undefined);
      return;
    }
    const code = isErrorCode(m.error.code) ? m.error.code : 'internal';
    this.answerError(
      s,
      m.id,
      new GatewayError(code, String(m.error.message), {
        retryable: m.error.retryable === true,
        ...(typeof m.error.retryAfterMs === 'number' ? { retryAfterMs: m.error.retryAfterMs } : {}),
      }),
    );
  }

  /**
   * A device message for a device without a session here: wait for a claim of
   * it in progress, else pass it on (the session moved to another edge a moment
   * ago; the queue group sends it there now that this edge let go).
   */
  private notHere(msg: BusMessage, imei: string, m: EdgeDeviceMessage): unknown {
    const pending = this.claiming.get(imei);
    if (pending !== undefined) {
      const again = (): unknown =>
        this.claiming.has(imei) ? this.passOn(imei, m) : this.onDeviceMessage(msg);
      return pending.then(again, again);
    }
    return this.passOn(imei, m);
  }

  private passOn(imei: string, m: EdgeDeviceMessage): Promise<unknown> {
    const hops = typeof m.hops === 'number' ? m.hops : 0;
    if (hops >= (m.type === 'claim' ? MAX_CLAIM_HOPS : MAX_FORWARD_HOPS)) {
      return Promise.reject(new GatewayError('bus.no_responders', 'The device has no session here.'));
    }
    // A claim's answer carries the session: a hop must not give up on it sooner than its sender.
    return this.bus.request(
      Subjects.device(imei),
      { ...m, hops: hops + 1 },
      { timeoutMs: m.type === 'claim' ? this.busTimeoutMs * CLAIM_PATIENCE : this.busTimeoutMs },
    );
  }

  // ---------------------------------------------------------------------------
  // Device messages from the bus (one handler for every session)

  private readonly onDeviceMessage = (msg: BusMessage): unknown => {
    const imei = msg.subject.slice(DEVICE_SUBJECT_PREFIX.length);
    const s = this.table.get(imei);
    const m = msg.data as EdgeDeviceMessage;
    if (m === null || typeof m !== 'object') throw new GatewayError('bus.bad_message', 'Bad device message.');
    switch (m.type) {
      case 'event': {
        if (typeof m.name !== 'string' || m.name.length === 0) {
          throw new GatewayError('request.bad_input', 'An event needs a name.', { field: 'name' });
        }
        if (s === undefined || s.ended) return this.notHere(msg, imei, m);
        const event: Frame = {
          kind: Kind.Event,
          seq: 0,
          name: m.name,
          ...(m.body === undefined ? {} : { body: m.body as Value }),
        };
        return { seq: this.appendSequenced(s, event) };
      }
      case 'revoke': {
        if (s === undefined || s.ended) return this.notHere(msg, imei, m);
        this.logger.info({ imei, code: m.code }, 'session revoked by the registry');
        this.endSession(s, m.code, String(m.reason), false);
        return { ok: true };
      }
      case 'takeover':
        if (m.byNode !== this.instanceId && s !== undefined && s.id !== m.sessionId) {
          this.endSession(s, 'session.replaced', 'A newer connection of this device took over.', false);
        }
        return { ok: true };
      case 'claim': {
        // Not here (yet): this edge may be claiming the same session itself (a device
        // that retried its Resume elsewhere), or the queue group picked the wrong
        // subscriber: wait for that claim, else pass the claim on, as for events.
        // Our own claim passed back to us must not wait for itself.
        if (s === undefined || s.ended) {
          return m.byNode === this.instanceId ? this.passOn(imei, m) : this.notHere(msg, imei, m);
        }
        if (
          m.byNode === this.instanceId ||
          s.id !== m.sessionId ||
          !sameSecret(s.resumeToken, m.resumeToken)
        ) {
          throw new GatewayError('auth.resume_failed');
        }
        if (typeof m.issuedAt === 'number' && m.issuedAt < s.resumedAt) {
          // A claim from a Resume the device gave up on (it came back elsewhere, then here or
          // here first): the device's current attempt keeps the session.
          throw new GatewayError('auth.resume_failed', 'A newer resume of this session took it.');
        }
        if (typeof m.expiresAt === 'number' && Date.now() > m.expiresAt) {
          // The claimer no longer waits for this answer: handing over now would lose the session.
          throw new GatewayError('bus.timeout', 'The claim came too late; the session stays here.', {
            retryable: true,
          });
        }
        const snapshot = s.snapshot();
        s.moved = true;
        this.endSession(
          s,
          'session.moved',
          'The session moved to another gateway connection.',
          true,
          m.poll === true,
        );
        return snapshot;
      }
      case 'answer': {
        const here = this.table.getById(m.sessionId);
        if (here !== undefined && !here.ended) {
          this.answerPassedOn(here, m);
          return { ok: true };
        }
        if (s !== undefined && !s.ended) return { ok: false }; // another session of the device: drop
        return this.notHere(msg, imei, m);
      }
      default:
        throw new GatewayError('bus.bad_message', 'Unknown device message type.');
    }
  };

  // ---------------------------------------------------------------------------
  // Long-poll support

  schedulePollFlush(c: PollCarrier): void {
    if (c.flushQueued) return;
    c.flushQueued = true;
    this.pollFlushes.push(c);
    if (!this.pollFlushScheduled) {
      this.pollFlushScheduled = true;
      // Coalesce: events appended in the same turn leave in one answer.
      setImmediate(this.runPollFlushes);
    }
  }

  scheduleWsFlush(c: WsCarrier): void {
    this.wsFlushes.push(c);
    if (!this.wsFlushScheduled) {
      this.wsFlushScheduled = true;
      setImmediate(this.runWsFlushes);
    }
  }

  private readonly runWsFlushes = (): void => {
    this.wsFlushScheduled = false;
    const list = this.wsFlushes;
    this.wsFlushes = [];
    for (const c of list) {
      try {
        c.flushLive();
      } catch (err) {
        this.internalError(c, err);
      }
    }
  };

  private readonly runPollFlushes = (): void => {
    this.pollFlushScheduled = false;
    const list = this.pollFlushes;
    this.pollFlushes = [];
    for (const c of list) c.flush(false);
  };

  pollTombstone(c: PollCarrier, status: number, frame: Uint8Array): void {
    const s = c.session;
    if (s === undefined) return;
    if (this.tombstones.size >= MAX_TOMBSTONES) {
      const oldest = this.tombstones.keys().next().value as string;
      this.tombstones.delete(oldest);
    }
    this.tombstones.set(s.id, { token: s.resumeToken, status, frame, at: this.now() });
  }

  /** The last frame kept for a long-poll device, if this request is its first since the carrier ended. */
  takeTombstone(sessionId: string, token: string): { status: number; frame: Uint8Array } | undefined {
    const t = this.tombstones.get(sessionId);
    if (t === undefined || !sameSecret(t.token, token)) return undefined;
    this.tombstones.delete(sessionId);
    return t;
  }

  // ---------------------------------------------------------------------------
  // The sweep: heartbeats, held GETs, resume windows

  private readonly sweep = (): void => {
    const now = this.now();
    if (now - this.lastUsageFlush >= USAGE_FLUSH_MS) {
      this.lastUsageFlush = now;
      for (const s of this.table.values()) this.flushUsage(s);
    }
    for (const c of this.unattached) {
      if (now - c.lastHeardAt > this.silenceMs) this.silent(c);
    }
    for (const s of this.table.values()) {
      const c = s.carrier;
      if (c === undefined) {
        if (now - s.detachedAt > this.resumeWindowMs) {
          this.endSession(s, 'session.expired', 'The session expired.', false);
        }
        continue;
      }
      if (c.kind === 'poll') {
        const p = c as PollCarrier;
        if (p.held !== undefined) {
          if (now >= p.heldUntil) p.flush(true);
          continue; // a held GET keeps the carrier alive
        }
      }
      if (now - c.lastHeardAt > this.silenceMs) {
        this.silent(c);
        continue;
      }
      // Only a compressing WebSocket has compression (long-poll carriers never do).
      if (c.compression !== undefined && now - c.compressedAt > this.compressionIdleMs) c.compression.park();
    }
    for (const [id, t] of this.tombstones) {
      if (now - t.at <= this.silenceMs) break; // insertion order = age order
      this.tombstones.delete(id);
    }
  };

  private silent(c: Carrier): void {
    this.fatal(
      c,
      'session.heartbeat_timeout',
      'Nothing was heard from the device within the heartbeat window.',
    );
  }

  // ---------------------------------------------------------------------------
  // Drain and close

  /** Bye session.draining to every carrier; sessions stay (detached) so that other edges can claim them. */
  drain(): void {
    if (this.draining) return;
    this.draining = true;
    for (const c of [...this.unattached]) {
      this.bye(c, 'session.draining', DRAINING_MESSAGE, true, drainJitterMs());
    }
    for (const s of this.table.values()) {
      const c = s.carrier;
      if (c !== undefined) {
        this.bye(c, 'session.draining', DRAINING_MESSAGE, true, drainJitterMs());
      }
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.sweepTimer !== undefined) clearInterval(this.sweepTimer);
    const at = this.now();
    for (const s of [...this.table.values()]) {
      s.ended = true;
      s.sub?.unsubscribe();
      s.sub = undefined;
      this.table.remove(s);
      // Not claimed by another edge before this one stopped: the session ends here.
      if (!s.moved) {
        this.flushUsage(s);
        this.recordLogout(s, at, this.draining ? 'session.draining' : 'session.closed');
      }
    }
    this.tombstones.clear();
  }

  /** Engine callback for a held GET whose client went away. */
  readonly onHeldAborted = (ex: PollExchange): void => {
    const p = ex.carrier;
    if (p !== undefined && p.held === ex) {
      p.held = undefined;
      p.lastHeardAt = this.now();
    }
    ex.carrier = undefined;
  };
}

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
  type DeviceMessage,
  type DeviceRouter,
  Subjects,
} from '../bus/bus.ts';
import type { TransportRequest } from '../transport/types.ts';
import {
  authenticateHello,
  type DeviceTokens,
  imeiOfSessionId,
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
  /** How long a takeover or claim waits for the edge holding the session. */
  busTimeoutMs: number;
  limits: EdgeLimits;
  logger: Logger;
  now: () => number;
  stats: EdgeStats;
}

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
  /** Carriers without a session yet (opening or authenticating). */
  private readonly unattached = new Set<Carrier>();
  private readonly claims = new Map<string, Promise<DeviceSession>>();
  private readonly tombstones = new Map<string, Tombstone>();
  private pollFlushes: PollCarrier[] = [];
  private pollFlushScheduled = false;
  private sweepTimer: ReturnType<typeof setInterval> | undefined;

  constructor(o: EdgeCoreOptions) {
    this.bus = o.bus;
    this.directory = o.directory;
    this.router = o.router;
    this.tokens = o.tokens;
    this.heartbeatMs = o.heartbeatMs;
    this.silenceMs = o.heartbeatMs * 2.5;
    this.resumeWindowMs = o.resumeWindowMs;
    this.requestTimeoutMs = o.requestTimeoutMs;
    this.busTimeoutMs = o.busTimeoutMs;
    this.limits = o.limits;
    this.decodeLimits = deviceDecodeLimits(o.limits);
    this.logger = o.logger;
    this.now = o.now;
    this.stats = o.stats;
    this.instanceId = `${o.nodeId}~${randomBytes(4).toString('hex')}`;
    this.stats.sessions = () => this.table.size;
  }

  get sessionCount(): number {
    return this.table.size;
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
    this.release(c);
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
    const decoded = decodeFrame(bytes, this.decodeLimits);
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
    try {
      await authenticateHello(h, this.directory, this.tokens);
    } catch (err) {
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
    this.addSession(session);
    this.logger.debug({ imei, sessionId, carrier: c.kind }, 'session opened');
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
    if (imei === undefined || r.version !== PROTOCOL_VERSION) {
      this.refuse(c, undefined, new GatewayError('auth.resume_failed', 'Unknown session.'));
      return;
    }
    let session: DeviceSession;
    try {
      session = await this.findForResume(imei, r.sessionId, r.resumeToken);
      await this.directory.lookup(imei);
    } catch (err) {
      const g = toGatewayError(err);
      if (g.code.startsWith('auth.')) {
        const s = this.table.getById(r.sessionId);
        // The device is gone or disabled: its session ends with it.
        if (s !== undefined && g.code !== 'auth.resume_failed') this.endSession(s, g.code, g.message, false);
        this.refuse(c, imei, g);
        return;
      }
      // The registry is unreachable: an authenticated session may continue (fail open for resumes only).
      this.logger.warn({ imei, code: g.code }, 'directory lookup failed during resume; continuing');
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
    this.logger.debug(
      { imei, sessionId: session.id, carrier: c.kind, lastSeq: r.lastSeq },
      'session resumed',
    );
    this.attach(c, session, true, r.lastSeq);
  }

  /** The session to resume: here, or claimed from the edge that holds it. Throws auth.resume_failed. */
  private async findForResume(imei: string, sessionId: string, resumeToken: string): Promise<DeviceSession> {
    const local = this.table.getById(sessionId);
    if (local !== undefined) {
      if (!sameSecret(local.resumeToken, resumeToken)) throw new GatewayError('auth.resume_failed');
      return local;
    }
    // Two resumes of the same unknown session at once share one claim.
    let pending = this.claims.get(sessionId);
    if (pending === undefined) {
      pending = this.claim(imei, sessionId, resumeToken).finally(() => this.claims.delete(sessionId));
      this.claims.set(sessionId, pending);
    }
    const session = await pending;
    if (!sameSecret(session.resumeToken, resumeToken)) throw new GatewayError('auth.resume_failed');
    return session;
  }

  private async claim(imei: string, sessionId: string, resumeToken: string): Promise<DeviceSession> {
    const msg: DeviceMessage = { type: 'claim', sessionId, resumeToken, byNode: this.instanceId };
    let snapshot: SessionSnapshot;
    try {
      snapshot = await this.bus.request<SessionSnapshot>(Subjects.device(imei), msg, {
        timeoutMs: this.busTimeoutMs,
      });
    } catch (err) {
      const code = toGatewayError(err).code;
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
    this.addSession(session);
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
    c.session = session;
    c.state = ACTIVE;
    // Poll requests carry only the session headers: once the session continues on a new
    // long-poll carrier, the last frame kept for the old one must not end the new one.
    if (c.kind === 'poll') this.tombstones.delete(session.id);
    if (resumed) session.ack(lastSeq);
    const { token, expiresAt } = this.tokens.issue(session.imei, session.id);
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
    });
    c.welcome(welcome, (resumed ? lastSeq : 0) + 1);
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

  private addSession(session: DeviceSession): void {
    this.table.add(session);
    session.sub = this.bus.subscribe(Subjects.device(session.imei), this.onDeviceMessage);
  }

  // ---------------------------------------------------------------------------
  // Ending carriers and sessions

  /** A carrier is gone: its session (if it still has this carrier) is detached and kept for resume. */
  release(c: Carrier): void {
    this.unattached.delete(c);
    const s = c.session;
    if (s === undefined || s.carrier !== c) return;
    s.carrier = undefined;
    s.detachedAt = this.now();
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
    this.release(c);
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
    this.release(c);
  }

  /** An authentication refusal: fatal Error with the code, counted and logged (never the secret or token). */
  private refuse(c: Carrier, imei: string | undefined, err: unknown): void {
    const g = toGatewayError(err);
    if (g.code.startsWith('auth.')) this.stats.authFailed(g.code);
    this.logger.info({ imei, carrier: c.kind, code: g.code }, 'device refused');
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

  endSession(s: DeviceSession, code: string, message: string, resumable: boolean): void {
    if (s.ended) return;
    s.ended = true;
    this.table.remove(s);
    s.sub?.unsubscribe();
    s.sub = undefined;
    const c = s.carrier;
    if (c !== undefined) this.bye(c, code, message, resumable);
    s.carrier = undefined;
    this.logger.debug({ imei: s.imei, sessionId: s.id, code }, 'session ended');
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
    if (s.ended) return; // the device resends the request in its next session
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
    if (s.ended) return;
    const g = toGatewayError(err);
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

  // ---------------------------------------------------------------------------
  // Device messages from the bus (one handler for every session)

  private readonly onDeviceMessage = (msg: BusMessage): unknown => {
    const imei = msg.subject.slice(DEVICE_SUBJECT_PREFIX.length);
    const s = this.table.get(imei);
    const m = msg.data as DeviceMessage;
    if (m === null || typeof m !== 'object') throw new GatewayError('bus.bad_message', 'Bad device message.');
    switch (m.type) {
      case 'event': {
        if (s === undefined || s.ended)
          throw new GatewayError('bus.no_responders', 'The device has no session here.');
        if (typeof m.name !== 'string' || m.name.length === 0) {
          throw new GatewayError('request.bad_input', 'An event needs a name.', { field: 'name' });
        }
        const event: Frame = {
          kind: Kind.Event,
          seq: 0,
          name: m.name,
          ...(m.body === undefined ? {} : { body: m.body as Value }),
        };
        return { seq: this.appendSequenced(s, event) };
      }
      case 'takeover':
        if (m.byNode !== this.instanceId && s !== undefined && s.id !== m.sessionId) {
          this.endSession(s, 'session.replaced', 'A newer connection of this device took over.', false);
        }
        return { ok: true };
      case 'claim': {
        if (
          m.byNode === this.instanceId ||
          s === undefined ||
          s.id !== m.sessionId ||
          !sameSecret(s.resumeToken, m.resumeToken)
        ) {
          throw new GatewayError('auth.resume_failed');
        }
        const snapshot = s.snapshot();
        this.endSession(s, 'session.moved', 'The session moved to another gateway connection.', true);
        return snapshot;
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
      if (now - c.lastHeardAt > this.silenceMs) this.silent(c);
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
    for (const s of [...this.table.values()]) {
      s.ended = true;
      s.sub?.unsubscribe();
      s.sub = undefined;
      this.table.remove(s);
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

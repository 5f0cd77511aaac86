/**
 * The engine-independent heart of the edge (SPEC.md §5): carriers' frames in,
 * sessions, the bus. It coordinates pieces that each see the edge through a
 * narrow host interface:
 *
 * - frame-dispatch.ts   frames by kind, as device-protocol/frames/*.ts allow them
 * - handshake.ts        Hello, Resume, attach and Welcome
 * - handoff.ts          takeovers and claims between edges, passing messages on
 *                       (edge-messages.ts: what edges send each other)
 * - drain-handover.ts   a draining edge's sessions offered to a survivor
 * - session-file.ts     a last edge's sessions kept on disk across a restart
 * - frame-intake.ts     size, rate, DEFLATE and decode of each frame; the poll rate
 * - relay.ts            requests to the transport and their answers
 * - sequencer.ts        seq numbers and the replay-buffer limits
 * - device-messages.ts  the one bus handler of every session's device subject
 * - flush-scheduler.ts  coalesced writes to WebSockets and held GETs
 * - session-records.ts  log records and usage counters of sessions
 * - pre-auth.ts         connections not authenticated yet: caps per address
 *                       and in all, their frame buckets (the Hello deadline
 *                       is the sweep's)
 * - auth-limiter.ts     refused Hello/Resume attempts per (address, IMEI) and address
 * - poll-forward.ts     long-poll requests served by the edge holding their session
 * - poll-tombstones.ts, long-poll.ts, sweep.ts
 *
 * What stays here: the engines' entry points, ending carriers and sessions,
 * drain and close.
 *
 * Scale notes. An idle session is a DeviceSession, its carrier, one map entry
 * and one bus subscription; no per-session timer exists: one sweep per edge
 * checks heartbeats, held long-poll GETs and resume windows. The bus handler
 * for device messages is one function for all sessions (it finds the session
 * by subject).
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { encodeBatch } from '../../device-protocol/codec.ts';
import type { DecodeLimits, Frame, Hello, Request, Resume } from '../../device-protocol/messages.ts';
import {
  type Bus,
  type BusMessage,
  type DeviceDirectory,
  type DeviceRouter,
  type DeviceSessionEvent,
  Subjects,
  type Subscription,
} from '../bus/bus.ts';
import { nullRecorder, type Recorder } from '../records/types.ts';
import { AuthLimiter } from './auth-limiter.ts';
import type { DeviceTokens } from './auth.ts';
import { CLOSED, type Carrier, type CarrierHost, type PollCarrier, WsCarrier } from './carriers.ts';
import type { DeviceSession } from './device-session.ts';
import { DrainHandover, type DrainHandoverHost, type HandoverOutcome } from './drain-handover.ts';
import type { EngineHost, PollExchange, PreAuthRefusalAnswer, WsDriver } from './engines/engine.ts';
import { deviceMessageHandler } from './device-messages.ts';
import { FlushScheduler } from './flush-scheduler.ts';
import { dispatchEarlyFrames, dispatchFrame, type FrameHost } from './frame-dispatch.ts';
import { FrameIntake } from './frame-intake.ts';
import { byeFrame, DRAINING_MESSAGE, drainJitterMs, errorFrame } from './frames.ts';
import { HandOff, type HandOffHost } from './handoff.ts';
import { Handshake, type HandshakeHost } from './handshake.ts';
import { deviceDecodeLimits, type EdgeLimits, takeToken } from './limits.ts';
import { handlePoll, type PollHost } from './long-poll.ts';
import type { EdgeStats } from './metrics.ts';
import { PollForwarding } from './poll-forward.ts';
import { PollTombstones } from './poll-tombstones.ts';
import { addressKey, PreAuthGate } from './pre-auth.ts';
import { RequestRelay } from './relay.ts';
import { Sequencer } from './sequencer.ts';
import { SessionRecords } from './session-records.ts';
import { SessionTable } from './session-table.ts';
import { Sweep, type SweepHost } from './sweep.ts';

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
  /** The clock of everything the edge times or stamps (Date.now in production). */
  now: () => number;
  stats: EdgeStats;
  /** Per-device log records and usage counters; nullRecorder when absent. */
  recorder?: Recorder;
  /** Failed-authentication limits; built from `limits` when absent. */
  authLimiter?: AuthLimiter;
}

export class EdgeCore
  implements
    EngineHost,
    CarrierHost,
    PollHost,
    FrameHost,
    HandshakeHost,
    HandOffHost,
    SweepHost,
    DrainHandoverHost
{
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
  /** Carriers without a session yet (opening or authenticating); each is counted in `preAuth`. */
  readonly unattached = new Set<Carrier>();
  readonly preAuth: PreAuthGate;
  readonly tombstones = new PollTombstones();
  readonly records: SessionRecords;
  readonly authLimiter: AuthLimiter;

  private readonly bus: Bus;
  private readonly handshake: Handshake;
  private readonly handoff: HandOff;
  private readonly relay: RequestRelay;
  private readonly sequencer: Sequencer;
  private readonly flushes: FlushScheduler;
  private readonly sweep: Sweep;
  private readonly handover: DrainHandover;
  private readonly intake: FrameIntake;
  private readonly forwarding: PollForwarding;

  constructor(o: EdgeCoreOptions) {
    this.bus = o.bus;
    this.limits = o.limits;
    this.decodeLimits = deviceDecodeLimits(o.limits);
    this.logger = o.logger;
    this.now = o.now;
    this.stats = o.stats;
    this.instanceId = `${o.nodeId}~${randomBytes(4).toString('hex')}`;
    this.authLimiter =
      o.authLimiter ??
      new AuthLimiter({
        perDevicePerMinute: o.limits.authFailuresPerDevicePerMinute,
        perAddressPerMinute: o.limits.authFailuresPerAddressPerMinute,
      });
    this.preAuth = new PreAuthGate(o.limits);
    this.intake = new FrameIntake({
      limits: this.limits,
      decodeLimits: this.decodeLimits,
      stats: this.stats,
      preAuth: this.preAuth,
      now: this.now,
      fatal: (c, code, message, retryAfterMs) => this.fatal(c, code, message, retryAfterMs),
      dispatch: (c, frame) => dispatchFrame(this, c, frame),
    });
    this.records = new SessionRecords(o.recorder ?? nullRecorder, o.now);
    this.handoff = new HandOff(this, { bus: o.bus, busTimeoutMs: o.busTimeoutMs, logger: o.logger });
    this.handover = new DrainHandover(this, { bus: o.bus, busTimeoutMs: o.busTimeoutMs, logger: o.logger });
    this.handshake = new Handshake(this, {
      directory: o.directory,
      tokens: o.tokens,
      authLimiter: this.authLimiter,
      finder: this.handoff,
      records: this.records,
      stats: o.stats,
      logger: o.logger,
      now: o.now,
      heartbeatMs: o.heartbeatMs,
      resumeWindowMs: o.resumeWindowMs,
      maxFrameBytes: o.limits.maxFrameBytes,
      compression: o.compression ?? true,
    });
    this.sequencer = new Sequencer(this, o.limits, o.logger);
    this.relay = new RequestRelay(this, {
      bus: o.bus,
      router: o.router,
      requestTimeoutMs: o.requestTimeoutMs,
      busTimeoutMs: o.busTimeoutMs,
      logger: o.logger,
    });
    this.flushes = new FlushScheduler(this);
    this.forwarding = new PollForwarding({
      bus: o.bus,
      busTimeoutMs: o.busTimeoutMs,
      logger: o.logger,
      serve: (ex) => this.poll(ex),
      counted: () => this.stats.pollForwards++,
    });
    this.onDeviceMessage = deviceMessageHandler({
      table: this.table,
      handoff: this.handoff,
      appendSequenced: (s, frame) => this.sequencer.append(s, frame),
      answerPassedOn: (s, m) => this.relay.answerPassedOn(s, m),
      endSession: (s, code, message, resumable) => this.endSession(s, code, message, resumable),
      servePoll: (m) => this.forwarding.serve(m),
      logger: o.logger,
    });
    this.sweep = new Sweep(this, {
      helloTimeoutMs: o.limits.helloTimeoutMs,
      heartbeatMs: o.heartbeatMs,
      resumeWindowMs: o.resumeWindowMs,
      compressionIdleMs: o.compressionIdleMs ?? 30_000,
    });
    this.stats.sessions = () => this.table.size;
    this.stats.unauthenticated = () => this.preAuth.open;
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

  /** Starts the one sweep timer of this edge, and takes sessions from edges that drain. */
  start(): void {
    this.sweep.start();
    this.handover.listen();
  }

  /** Every session held here (DrainHandoverHost). */
  sessions(): Iterable<DeviceSession> {
    return this.table.values();
  }

  adopt(imei: string, sessionId: string, resumeToken: string): Promise<boolean> {
    return this.handoff.adopt(imei, sessionId, resumeToken);
  }

  /**
   * Sessions read back from the data directory (session-file.ts), detached
   * since their detachedAt; one the edge knows already (by id or device) is skipped.
   */
  restoreSessions(sessions: Iterable<DeviceSession>): number {
    let n = 0;
    for (const s of sessions) {
      if (this.table.getById(s.id) !== undefined || this.table.get(s.imei) !== undefined) continue;
      this.addSession(s);
      n++;
    }
    return n;
  }

  // ---------------------------------------------------------------------------
  // Engine entry points

  admit(address: string): PreAuthRefusalAnswer | undefined {
    const reason = this.preAuth.refusal(addressKey(address));
    if (reason === undefined) return undefined;
    this.stats.preAuthRefused(reason);
    // Room comes back as connections authenticate, or at the latest at their Hello deadline.
    return {
      status: reason === 'address_cap' ? 429 : 503,
      retryAfterSec: Math.ceil(this.limits.helloTimeoutMs / 1000),
    };
  }

  newWsCarrier(address: string): WsCarrier {
    return new WsCarrier(this, addressKey(address));
  }

  wsOpen(c: WsCarrier, socket: unknown): void {
    c.socket = socket;
    const now = this.now();
    c.openedAt = now;
    c.lastHeardAt = now;
    if (this.draining) {
      this.drainingBye(c);
      return;
    }
    this.addUnattached(c);
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

  /** Engine callback for a held GET whose client went away. */
  readonly onHeldAborted = (ex: PollExchange): void => {
    const p = ex.carrier;
    if (p !== undefined && p.held === ex) {
      p.held = undefined;
      p.lastHeardAt = this.now();
    }
    ex.carrier = undefined;
  };

  // ---------------------------------------------------------------------------
  // Frames from devices

  /** One frame's bytes from a carrier (frame-intake.ts); false when the carrier closed because of it. */
  receive(c: Carrier, bytes: Uint8Array): boolean {
    return this.intake.receive(c, bytes);
  }

  pollRequestAllowed(c: PollCarrier): boolean {
    return this.intake.pollRequestAllowed(c);
  }

  addUnattached(c: Carrier): void {
    if (this.unattached.has(c)) return;
    this.unattached.add(c);
    c.preAuth = this.preAuth.enter(c.address);
  }

  /** The carrier got a session or closed: it no longer counts as unauthenticated. */
  private leaveUnattached(c: Carrier): void {
    this.unattached.delete(c);
    const e = c.preAuth;
    if (e === undefined) return;
    c.preAuth = undefined;
    this.preAuth.leave(e);
  }

  hello(c: Carrier, h: Hello): void {
    this.handshake.hello(c, h).catch((err) => this.internalError(c, err));
  }

  resume(c: Carrier, r: Resume): void {
    this.handshake.resume(c, r).catch((err) => this.internalError(c, err));
  }

  request(c: Carrier, s: DeviceSession, r: Request): void {
    this.relay.request(c, s, r);
  }

  appendSequenced(s: DeviceSession, frame: Frame): number {
    return this.sequencer.append(s, frame);
  }

  // ---------------------------------------------------------------------------
  // Sessions gained (HandshakeHost, HandOffHost)

  addSession(session: DeviceSession, sub?: Subscription): void {
    this.table.add(session);
    session.sub = sub ?? this.handoff.subscribe(session.imei);
  }

  attaching(c: Carrier, session: DeviceSession): void {
    this.leaveUnattached(c);
    if (c.kind === 'poll') this.tombstones.forget(session.id);
  }

  welcomed(c: Carrier, session: DeviceSession): void {
    // The device's transport node brings its backend sessions back (no new login needed).
    this.publishSession(Subjects.sessionUp, session);
    // Frames that rode behind Hello/Resume are the session's too: a fresh carrier must not
    // carry a burst past the session's bucket.
    const early = c.early?.length ?? 0;
    const now = this.now();
    for (let i = 0; i < early; i++) {
      if (!takeToken(session, this.limits, now)) {
        this.fatal(c, 'session.rate_limited', 'Too many frames per second.', 1000);
        return;
      }
    }
    dispatchEarlyFrames(this, c);
  }

  forwardPoll(imei: string, ex: PollExchange): void {
    this.forwarding.forward(imei, ex);
  }

  // ---------------------------------------------------------------------------
  // Ending carriers and sessions

  /**
   * A carrier is gone: its session (if it still has this carrier) is detached
   * and kept for resume. `code` says why (recorded; undefined: not recorded,
   * the session only moved to another edge).
   */
  release(c: Carrier, code: string | undefined): void {
    this.leaveUnattached(c);
    const s = c.session;
    if (s === undefined || s.carrier !== c) return;
    s.carrier = undefined;
    s.detachedAt = this.now();
    if (code !== undefined) this.records.disconnect(s, c.kind, code, s.detachedAt);
    this.records.flushUsage(s);
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

  drainingBye(c: Carrier): void {
    this.bye(c, 'session.draining', DRAINING_MESSAGE, true, drainJitterMs(this.table.size));
  }

  silent(c: Carrier): void {
    this.fatal(
      c,
      'session.heartbeat_timeout',
      'Nothing was heard from the device within the heartbeat window.',
    );
  }

  helloOverdue(c: Carrier): void {
    this.stats.preAuthRefused('hello_deadline');
    this.fatal(
      c,
      'session.heartbeat_timeout',
      `No Hello or Resume was answered within ${this.limits.helloTimeoutMs} ms of connecting.`,
    );
  }

  /** A bug, not a device's fault: logged, and the carrier closed with 'internal' (never the process). */
  internalError(c: Carrier, err: unknown): void {
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

  endSession(s: DeviceSession, code: string, message: string, resumable: boolean): void {
    if (s.ended) return;
    s.ended = true;
    this.table.remove(s);
    s.sub?.unsubscribe();
    s.sub = undefined;
    const c = s.carrier;
    if (c !== undefined) this.bye(c, code, message, resumable);
    s.carrier = undefined;
    // Claimed by a Resume elsewhere: the device's requests that land here go there now, not to a last frame.
    if (s.moved) this.tombstones.forget(s.id);
    this.records.flushUsage(s);
    if (!s.moved) {
      // The device's transport node lets its backend sessions linger (CSI inactive).
      this.publishSession(Subjects.sessionDown, s);
      this.records.ended(s, code);
    }
    this.logger.debug({ imei: s.imei, sessionId: s.id, code }, 'session ended');
  }

  // ---------------------------------------------------------------------------
  // Device messages from the bus (one handler for every session: device-messages.ts)

  /** The one bus handler of this edge's device subjects (device-messages.ts). */
  readonly onDeviceMessage: (msg: BusMessage) => unknown;

  // ---------------------------------------------------------------------------
  // Carriers' requests (CarrierHost)

  schedulePollFlush(c: PollCarrier): void {
    this.flushes.poll(c);
  }

  scheduleWsFlush(c: WsCarrier): void {
    this.flushes.ws(c);
  }

  pollTombstone(c: PollCarrier, status: number, frame: Uint8Array): void {
    const s = c.session;
    if (s !== undefined) this.tombstones.keep(s.id, s.resumeToken, status, frame, this.now());
  }

  // ---------------------------------------------------------------------------
  // Drain and close

  /**
   * Bye session.draining to every carrier; sessions stay (detached) so that
   * other edges can claim them, until handOver() offers them to a survivor.
   */
  drain(): void {
    if (this.draining) return;
    this.draining = true;
    // No longer a survivor for other draining edges (an offer meanwhile is refused anyway).
    this.handover.stopListening();
    for (const c of [...this.unattached]) this.drainingBye(c);
    for (const s of this.table.values()) {
      const c = s.carrier;
      if (c !== undefined) this.drainingBye(c);
    }
  }

  /**
   * After drain(): waits (at most `settleMs`) for requests in progress, so that
   * their answers ride in the replay buffers, then offers every session to a
   * surviving edge until `deadline`.
   */
  async handOver(settleMs: number, deadline: number): Promise<HandoverOutcome> {
    await this.relay.settled(settleMs);
    return this.handover.handOverAll(this.now, deadline);
  }

  /**
   * The sessions go on elsewhere (written to disk): close() must not log them
   * out nor tell the transport they ended.
   */
  keptElsewhere(sessions: Iterable<DeviceSession>): void {
    for (const s of sessions) s.moved = true;
  }

  close(): void {
    if (this.closed) return;
    this.handover.stopListening();
    this.relay.close();
    this.closed = true;
    this.sweep.stop();
    const at = this.now();
    for (const s of [...this.table.values()]) {
      s.ended = true;
      s.sub?.unsubscribe();
      s.sub = undefined;
      this.table.remove(s);
      // Not claimed by another edge before this one stopped: the session ends here.
      if (!s.moved) {
        this.records.flushUsage(s);
        this.records.logout(s, at, this.draining ? 'session.draining' : 'session.closed');
      }
    }
    this.tombstones.clear();
  }
}

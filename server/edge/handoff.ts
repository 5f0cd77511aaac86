/**
 * The hand-off of sessions between edges (several workers or nodes share the
 * device port, and a device may reconnect to any of them):
 *
 * - takeover: a Hello here asks whoever holds a session of the device to end it;
 * - claim: a Resume here for a session held elsewhere asks the holder for it; the holder answers with the session's snapshot
 *   (replay buffer and sequence numbers) and lets it go;
 * - passing on: a device message that reaches an edge without the session
 *   (the queue group picked the old holder or a claimer) waits for a claim in
 *   progress here, else goes back on the bus, a bounded number of hops.
 *
 * - adoption: an edge that drains offers its sessions to a surviving edge
 *   (drain-handover.ts), which claims each of them as a Resume would (`adopt`).
 *
 * A claim carries its issue and expiry times on the claimer's clock; the
 * holder compares them with its own (edges of one deployment share the wall
 * clock; the injected `now` is Date.now in production).
 *
 * Drain and SIGTERM: push to a survivor, not keep-and-answer-claims. Keeping
 * the sessions until each device came back would hold the draining process
 * for up to the resume window (120 s by default), longer than the drain
 * timeouts of node.ts and edge-workers.ts (30 s) and than the usual grace of
 * a process manager before SIGKILL; and a device that never comes back would
 * pin it for the whole window. Pushing ends once every session lives on a
 * survivor, bounded by bus round trips. The push is an offer of the session
 * ids; the survivor then pulls each session with the ordinary claim, so the
 * one mechanism that already moves a session exactly once (the claimer
 * subscribes before the holder lets go; events meanwhile wait for the claim
 * or are passed on) moves it here too, and a device that resumes on a third
 * edge meanwhile just claims it from whoever holds it then. Without a
 * survivor (a single-node gateway, or every worker of the node stopping) the
 * edge writes its sessions to its data directory instead (session-file.ts).
 */
import type { Logger } from 'pino';
import { GatewayError, toGatewayError } from '../../device-protocol/errors.ts';
import { type Bus, type BusMessage, type DeviceMessage, Subjects, type Subscription } from '../bus/bus.ts';
import { sameSecret } from './auth.ts';
import { DeviceSession, type SessionSnapshot } from './device-session.ts';
import { type ClaimMessage, DEVICE_QUEUE, type EdgeDeviceMessage } from './edge-messages.ts';
import { forwardTimeoutMs } from './poll-forward.ts';
import type { SessionTable } from './session-table.ts';

/** How often a device message may be passed on to the edge that now holds the session. */
const MAX_FORWARD_HOPS = 3;
/**
 * A claim may be passed on more often: in a reconnect storm the queue group can
 * hand it back to its own sender (subscribed while it waits) several times in a
 * row before it reaches the edge that now holds the session; each hop is one
 * bus round trip, and failing it would lose the session.
 */
const MAX_CLAIM_HOPS = 12;
/** A claim waits this many bus timeouts for the holder's answer (the Resume that asked waits one). */
export const CLAIM_PATIENCE = 10;
/** A holder hands a session over only if the claim's answer can still reach its sender this long before it gives up. */
const CLAIM_MARGIN_MS = 2000;

/** What the hand-off needs from the edge. */
export interface HandOffHost {
  /** Names this edge in takeover and claim messages (several workers may share a node id). */
  readonly instanceId: string;
  readonly closed: boolean;
  readonly table: SessionTable;
  now(): number;
  /** The edge's one handler of device messages: claimed sessions subscribe with it, held-back messages re-enter it. */
  readonly onDeviceMessage: (msg: BusMessage) => unknown;
  /** Puts a claimed session (detached) into the table with the subscription made for it. */
  addSession(session: DeviceSession, sub: Subscription): void;
  endSession(s: DeviceSession, code: string, message: string, resumable: boolean): void;
}

export interface HandOffOptions {
  bus: Bus;
  /** How long a takeover or a Resume waits for the edge holding the session. */
  busTimeoutMs: number;
  logger: Logger;
}

function busyElsewhere(cause?: unknown): GatewayError {
  return new GatewayError('session.busy', 'The session is busy elsewhere; resume again shortly.', {
    ...(cause === undefined ? {} : { cause }),
    retryable: true,
    retryAfterMs: 500 + Math.floor(Math.random() * 1500),
  });
}

export class HandOff {
  private readonly bus: Bus;
  private readonly busTimeoutMs: number;
  private readonly logger: Logger;
  private readonly claims = new Map<string, Promise<DeviceSession>>();
  /** Claims in progress by IMEI: device messages that reach this edge meanwhile wait for them. */
  private readonly claiming = new Map<string, Promise<DeviceSession>>();

  constructor(
    private readonly host: HandOffHost,
    o: HandOffOptions,
  ) {
    this.bus = o.bus;
    this.busTimeoutMs = o.busTimeoutMs;
    this.logger = o.logger;
  }

  /** Subscribes this edge to a device's messages, in the edges' queue group. */
  subscribe(imei: string): Subscription {
    return this.bus.subscribe(Subjects.device(imei), this.host.onDeviceMessage, { queue: DEVICE_QUEUE });
  }

  /** Asks whoever holds a session of this device (another edge or worker) to end it. */
  async takeoverElsewhere(imei: string, sessionId: string): Promise<void> {
    const msg: DeviceMessage = { type: 'takeover', sessionId, byNode: this.host.instanceId };
    try {
      await this.bus.request(Subjects.device(imei), msg, { timeoutMs: this.busTimeoutMs });
    } catch (err) {
      const code = toGatewayError(err).code;
      // no_responders: nobody holds a session of this device, the usual case.
      if (code !== 'bus.no_responders')
        this.logger.warn({ imei, code }, 'takeover request failed; continuing');
    }
  }

  /** A takeover from another edge: a newer Hello of the device there ends the session here. */
  takeoverReceived(s: DeviceSession | undefined, m: Extract<DeviceMessage, { type: 'takeover' }>): unknown {
    if (m.byNode !== this.host.instanceId && s !== undefined && s.id !== m.sessionId) {
      this.host.endSession(s, 'session.replaced', 'A newer connection of this device took over.', false);
    }
    return { ok: true };
  }

  /**
   * The session to resume: here, or claimed from the edge that holds it.
   * Throws auth.resume_failed, or retryable session.busy when the holder does
   * not answer in time.
   */
  async findForResume(imei: string, sessionId: string, resumeToken: string): Promise<DeviceSession> {
    const local = this.host.table.getById(sessionId);
    if (local !== undefined) {
      if (!sameSecret(local.resumeToken, resumeToken)) throw new GatewayError('auth.resume_failed');
      local.resumedAt = this.host.now();
      return local;
    }
    const session = await this.waitForClaim(this.sharedClaim(imei, sessionId, resumeToken));
    if (!sameSecret(session.resumeToken, resumeToken)) throw new GatewayError('auth.resume_failed');
    session.resumedAt = this.host.now();
    return session;
  }

  /**
   * Takes a session a draining edge offered (drain-handover.ts) by the same
   * claim a Resume makes, without being a resume of the device (resumedAt
   * stays: a device's Resume elsewhere meanwhile still wins). Resolves false
   * when the session is here already or went elsewhere.
   */
  async adopt(imei: string, sessionId: string, resumeToken: string): Promise<boolean> {
    const local = this.host.table.getById(sessionId);
    if (local !== undefined) return false;
    try {
      await this.sharedClaim(imei, sessionId, resumeToken);
      return true;
    } catch (err) {
      const code = toGatewayError(err).code;
      if (code !== 'auth.resume_failed') this.logger.debug({ imei, code }, 'offered session not adopted');
      return false;
    }
  }

  /** Two claims of the same session here at once (Resumes, an adoption) share one. */
  private sharedClaim(imei: string, sessionId: string, resumeToken: string): Promise<DeviceSession> {
    let pending = this.claims.get(sessionId);
    if (pending === undefined) {
      const started = this.claim(imei, sessionId, resumeToken).finally(() => {
        this.claims.delete(sessionId);
        if (this.claiming.get(imei) === started) this.claiming.delete(imei);
      });
      pending = started;
      this.claims.set(sessionId, pending);
      this.claiming.set(imei, pending);
      pending.catch(() => undefined); // may settle after the Resume that asked stopped waiting
    }
    return pending;
  }

  /**
   * A Resume waits busTimeoutMs for its claim, then is refused as retryable
   * session.busy; the claim itself goes on (CLAIM_PATIENCE × longer). The holder
   * may answer late, overloaded in a reconnect storm, after it already handed
   * the session over: giving up on that answer would lose the session. A late
   * snapshot is installed here (detached) and the device's retried Resume finds
   * it, on this edge or by a claim from another.
   */
  private waitForClaim(pending: Promise<DeviceSession>): Promise<DeviceSession> {
    return new Promise<DeviceSession>((resolve, reject) => {
      const timer = setTimeout(() => reject(busyElsewhere()), this.busTimeoutMs);
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

  private async claim(imei: string, sessionId: string, resumeToken: string): Promise<DeviceSession> {
    const patienceMs = this.busTimeoutMs * CLAIM_PATIENCE;
    const issuedAt = this.host.now();
    const msg: ClaimMessage = {
      type: 'claim',
      sessionId,
      resumeToken,
      byNode: this.host.instanceId,
      issuedAt,
      // After this the holder must not hand the session over any more: this edge stops
      // listening for the answer at the request's timeout (margin for the reply's way).
      expiresAt: issuedAt + patienceMs - Math.min(CLAIM_MARGIN_MS, patienceMs / 4),
    };
    // The request leaves before this edge subscribes (so that the claim cannot reach this edge
    // itself), and the subscription exists before the holder lets go (so that no event meanwhile
    // finds nobody: those that reach this edge wait for the claim, see notHere).
    const asked = this.bus.request<SessionSnapshot>(Subjects.device(imei), msg, { timeoutMs: patienceMs });
    let sub: Subscription;
    try {
      sub = this.subscribe(imei);
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
        throw busyElsewhere(err);
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
    if (session.id !== sessionId || session.imei !== imei || this.host.closed) {
      throw new GatewayError('auth.resume_failed', 'The session could not be taken over.');
    }
    if (this.host.table.get(imei) !== undefined) {
      // A newer session of the device started here meanwhile; the claimed one is older.
      throw new GatewayError('auth.resume_failed', 'A newer session of this device exists.');
    }
    session.detachedAt = this.host.now();
    this.host.addSession(session, sub);
    this.logger.debug({ imei, sessionId }, 'session claimed from another edge');
    return session;
  }

  /**
   * A claim from another edge. Not here (yet): this edge may be claiming the
   * same session itself (a device that retried its Resume elsewhere), or the
   * queue group picked the wrong subscriber: wait for that claim, else pass the
   * claim on, as for events. Here: hand the snapshot over and let the session
   * go, unless the claim is not the device's current attempt.
   */
  claimReceived(msg: BusMessage, imei: string, s: DeviceSession | undefined, m: ClaimMessage): unknown {
    if (s === undefined || s.ended) {
      // Our own claim passed back to us must not wait for itself.
      return m.byNode === this.host.instanceId ? this.passOn(imei, m) : this.notHere(msg, imei, m);
    }
    if (
      m.byNode === this.host.instanceId ||
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
    if (typeof m.expiresAt === 'number' && this.host.now() > m.expiresAt) {
      // The claimer no longer waits for this answer: handing over now would lose the session.
      throw new GatewayError('bus.timeout', 'The claim came too late; the session stays here.', {
        retryable: true,
      });
    }
    const snapshot = s.snapshot();
    s.moved = true;
    this.host.endSession(s, 'session.moved', 'The session moved to another gateway connection.', true);
    return snapshot;
  }

  /**
   * A device message for a device without a session here: wait for a claim of
   * it in progress, else pass it on (the session moved to another edge a moment
   * ago; the queue group sends it there now that this edge let go).
   */
  notHere(msg: BusMessage, imei: string, m: EdgeDeviceMessage): unknown {
    const pending = this.claiming.get(imei);
    if (pending !== undefined) {
      const again = (): unknown =>
        this.claiming.has(imei) ? this.passOn(imei, m) : this.host.onDeviceMessage(msg);
      return pending.then(again, again);
    }
    return this.passOn(imei, m);
  }

  private passOn(imei: string, m: EdgeDeviceMessage): Promise<unknown> {
    const hops = typeof m.hops === 'number' ? m.hops : 0;
    if (hops >= (m.type === 'claim' ? MAX_CLAIM_HOPS : MAX_FORWARD_HOPS)) {
      return Promise.reject(new GatewayError('bus.no_responders', 'The device has no session here.'));
    }
    // A claim's answer carries the session, a forwarded GET may be held: a hop must not give up
    // on either sooner than its sender.
    const timeoutMs =
      m.type === 'claim'
        ? this.busTimeoutMs * CLAIM_PATIENCE
        : m.type === 'poll'
          ? forwardTimeoutMs(m, this.busTimeoutMs)
          : this.busTimeoutMs;
    return this.bus.request(Subjects.device(imei), { ...m, hops: hops + 1 }, { timeoutMs });
  }
}

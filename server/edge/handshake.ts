/**
 * The handshake of a carrier (SPEC.md §5, Auth): Hello opens a new session,
 * Resume continues one (here, or claimed from the edge holding it), and
 * attach puts the carrier on the session and sends Welcome plus the frames
 * the device has not acked. Refusals are fatal Errors, counted against the
 * authentication attempt limits (auth-limiter.ts) and recorded, sampled
 * (refusal-records.ts).
 *
 * What the limits see: a secret is checked only while the (address, IMEI)
 * and address buckets allow it (a guess costs a hash). A token or a resume
 * token is checked first, whatever the buckets say: it cannot be forged, so
 * a device that holds a valid one is never refused because of what others
 * did from its address; only a failed one meets the limits.
 */
import type { Logger } from 'pino';
import { encodeFrame } from '../../device-protocol/codec.ts';
import { DEFLATE } from '../../device-protocol/compression.ts';
import { GatewayError, presentError, toGatewayError } from '../../device-protocol/errors.ts';
import { type Hello, Kind, PROTOCOL_VERSION, type Resume } from '../../device-protocol/messages.ts';
import type { DeviceDirectory, DeviceInfo } from '../bus/bus.ts';
import type { AuthLimiter } from './auth-limiter.ts';
import {
  authenticateHello,
  type DeviceTokens,
  imeiOfSessionId,
  isDeviceId,
  newResumeToken,
  newSessionId,
} from './auth.ts';
import { ACTIVE, AUTHENTICATING, CLOSED, type Carrier } from './carriers.ts';
import { DeviceSession } from './device-session.ts';
import { byeFrame } from './frames.ts';
import { sessionHeartbeatMs } from './heartbeat.ts';
import type { EdgeStats } from './metrics.ts';
import type { SessionRecords } from './session-records.ts';
import type { SessionTable } from './session-table.ts';

/** What the handshake needs from the edge. */
export interface HandshakeHost {
  readonly draining: boolean;
  readonly closed: boolean;
  readonly table: SessionTable;
  /** Adds a new session to the table and subscribes to its device messages. */
  addSession(session: DeviceSession): void;
  endSession(s: DeviceSession, code: string, message: string, resumable: boolean): void;
  fatal(c: Carrier, code: string, message: string, retryAfterMs?: number, quiet?: boolean): void;
  /** Bye session.draining: the device reconnects to another edge. */
  drainingBye(c: Carrier): void;
  /** `c` is about to carry `session` (Welcome not sent yet): it has a session now. */
  attaching(c: Carrier, session: DeviceSession): void;
  /** Welcome left on `c`: the device's transport node may bring its backends up; early frames are due. */
  welcomed(c: Carrier, session: DeviceSession): void;
}

/** Where sessions to resume come from, and how other edges learn of a new one (HandOff). */
export interface SessionFinder {
  findForResume(imei: string, sessionId: string, resumeToken: string): Promise<DeviceSession>;
  takeoverElsewhere(imei: string, sessionId: string): Promise<void>;
}

export interface HandshakeOptions {
  directory: DeviceDirectory;
  tokens: DeviceTokens;
  authLimiter: AuthLimiter;
  finder: SessionFinder;
  records: SessionRecords;
  stats: EdgeStats;
  logger: Logger;
  now: () => number;
  heartbeatMs: number;
  resumeWindowMs: number;
  maxFrameBytes: number;
  /** Compress WebSocket carriers of devices that ask (SPEC.md §4.4). */
  compression: boolean;
}

const REPLACED = 'A newer connection of this device took over.';

export class Handshake {
  private readonly o: HandshakeOptions;

  constructor(
    private readonly host: HandshakeHost,
    options: HandshakeOptions,
  ) {
    this.o = options;
  }

  async hello(c: Carrier, h: Hello): Promise<void> {
    c.state = AUTHENTICATING;
    const host = this.host;
    if (host.draining) {
      host.drainingBye(c);
      return;
    }
    if (h.version !== PROTOCOL_VERSION) {
      this.refuse(c, h.imei, new GatewayError('protocol.unsupported_version'));
      return;
    }
    const address = c.address;
    const limitKey = isDeviceId(h.imei) ? h.imei : undefined;
    const byToken = h.token !== undefined && limitKey !== undefined;
    if (!byToken && this.authRateLimited(c, limitKey, address)) return;
    let info: DeviceInfo;
    try {
      info = await authenticateHello(h, this.o.directory, this.o.tokens);
    } catch (err) {
      this.failed(c, limitKey, h.imei, err);
      return;
    }
    if (c.state === CLOSED) return;
    const imei = h.imei;
    const sessionId = newSessionId(imei);
    const local = host.table.get(imei);
    if (local !== undefined) host.endSession(local, 'session.replaced', REPLACED, false);
    else await this.o.finder.takeoverElsewhere(imei, sessionId);
    // Another Hello of the same device may have won the race meanwhile: the newest wins.
    const again = host.table.get(imei);
    if (again !== undefined) host.endSession(again, 'session.replaced', REPLACED, false);
    if (c.state === CLOSED || host.closed) return;
    const session = new DeviceSession(sessionId, imei, newResumeToken());
    session.operator = info.operator;
    session.keyEpoch = info.keyEpoch;
    session.heartbeatMs = sessionHeartbeatMs(info.heartbeatMs, this.o.heartbeatMs);
    if (h.caps !== undefined) session.caps = h.caps;
    host.addSession(session);
    this.o.logger.debug({ imei, sessionId, carrier: c.kind }, 'session opened');
    this.o.stats.logins++;
    this.o.records.login(imei, info.operator, c.kind);
    this.attach(c, session, false, 0);
  }

  async resume(c: Carrier, r: Resume): Promise<void> {
    c.state = AUTHENTICATING;
    const host = this.host;
    if (host.draining) {
      host.drainingBye(c);
      return;
    }
    const imei = imeiOfSessionId(r.sessionId);
    if (imei === undefined || r.version !== PROTOCOL_VERSION) {
      this.o.stats.resumeFailed('auth.resume_failed');
      this.failed(c, imei, undefined, new GatewayError('auth.resume_failed', 'Unknown session.'));
      return;
    }
    let session: DeviceSession;
    try {
      session = await this.o.finder.findForResume(imei, r.sessionId, r.resumeToken);
      const info = await this.o.directory.lookup(imei);
      if (info.keyEpoch !== undefined) session.keyEpoch = info.keyEpoch;
      session.heartbeatMs = sessionHeartbeatMs(info.heartbeatMs, this.o.heartbeatMs);
    } catch (err) {
      const g = toGatewayError(err);
      if (g.code.startsWith('auth.')) {
        const s = host.table.getById(r.sessionId);
        // The device is gone or disabled: its session ends with it.
        if (s !== undefined && g.code !== 'auth.resume_failed') host.endSession(s, g.code, g.message, false);
        this.o.stats.resumeFailed(g.code);
        this.failed(c, imei, imei, g);
        return;
      }
      // The registry is unreachable: an authenticated session may continue (fail open for resumes only).
      this.o.logger.warn(
        { imei, code: g.code },
        'resume hit a bus or registry error; continuing only if the session is here',
      );
      const s = host.table.getById(r.sessionId);
      if (s === undefined) {
        // The session may well be alive elsewhere: the device is told to Resume again shortly.
        const busy = g.code.startsWith('bus.')
          ? new GatewayError('session.busy', undefined, {
              retryable: true,
              ...(g.retryAfterMs === undefined ? {} : { retryAfterMs: g.retryAfterMs }),
              cause: g,
            })
          : g;
        this.refuseResume(c, imei, busy);
        return;
      }
      session = s;
    }
    if (c.state === CLOSED || host.closed) return;
    if (session.ended || host.table.get(imei) !== session) {
      this.refuseResume(c, imei, new GatewayError('auth.resume_failed', 'The session ended meanwhile.'));
      return;
    }
    if (r.lastSeq > session.lastSeq || r.lastSeq < session.ackedSeq) {
      this.refuseResume(
        c,
        imei,
        new GatewayError(
          'auth.resume_failed',
          `lastSeq ${r.lastSeq} is outside what this session holds (${session.ackedSeq}..${session.lastSeq}).`,
        ),
      );
      return;
    }
    this.o.stats.resumes++;
    this.o.records.resumed(session, c.kind);
    this.o.logger.debug(
      { imei, sessionId: session.id, carrier: c.kind, lastSeq: r.lastSeq },
      'session resumed',
    );
    this.attach(c, session, true, r.lastSeq);
  }

  /** Puts a carrier on a session and sends Welcome plus the replay. */
  private attach(c: Carrier, session: DeviceSession, resumed: boolean, lastSeq: number): void {
    if (this.host.draining) {
      this.host.drainingBye(c);
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
    this.host.attaching(c, session);
    session.carrier = c;
    session.detachedAt = 0;
    session.via = c.kind;
    c.session = session;
    c.state = ACTIVE;
    if (resumed) session.ack(lastSeq);
    const o = this.o;
    const { token, expiresAt } = o.tokens.issue(session.imei, session.id, session.keyEpoch);
    const compress =
      o.compression && c.kind === 'ws' && session.caps?.compression?.includes(DEFLATE) === true;
    const welcome = encodeFrame({
      kind: Kind.Welcome,
      sessionId: session.id,
      resumeToken: session.resumeToken,
      token,
      tokenExpiresAt: expiresAt,
      heartbeatMs: session.heartbeatMs ?? o.heartbeatMs,
      resumed,
      lastSeq: session.lastSeq,
      resumeWindowMs: o.resumeWindowMs,
      maxFrameBytes: o.maxFrameBytes,
      serverTime: o.now(),
      ...(compress ? { compression: DEFLATE } : {}),
    });
    c.welcome(welcome, (resumed ? lastSeq : 0) + 1, compress);
    this.host.welcomed(c, session);
  }

  /**
   * Refuses with auth.rate_limited when the (address, IMEI) pair or the
   * address (the carrier's, pre-auth.ts addressKey) failed too often lately.
   */
  private authRateLimited(c: Carrier, imei: string | undefined, address: string): boolean {
    const waitMs = this.o.authLimiter.check(imei, address, this.o.now());
    if (waitMs <= 0) return false;
    this.refuse(c, imei, new GatewayError('auth.rate_limited', undefined, { retryAfterMs: waitMs }));
    return true;
  }

  /**
   * An attempt failed: refused with its code and counted against the limits
   * (an auth.* refusal, not a registry outage), or with auth.rate_limited when
   * the limits are spent already. `limitKey` is the IMEI the limits count,
   * `recordImei` the one the refusal is recorded for.
   */
  private failed(
    c: Carrier,
    limitKey: string | undefined,
    recordImei: string | undefined,
    err: unknown,
  ): void {
    const address = c.address;
    if (this.authRateLimited(c, limitKey, address)) return;
    if (toGatewayError(err).code.startsWith('auth.')) {
      this.o.authLimiter.fail(limitKey, address, this.o.now());
    }
    this.refuse(c, recordImei, err);
  }

  /** A Resume refused without counting against the limits, counted by code (mmgw_edge_resume_failures_total). */
  private refuseResume(c: Carrier, imei: string | undefined, err: GatewayError): void {
    this.o.stats.resumeFailed(err.code);
    this.refuse(c, imei, err);
  }

  /**
   * An authentication refusal: fatal Error with the code, counted, and
   * recorded and logged (never the secret or token) as the records are
   * sampled: a refusal that is only counted is logged at debug level, so
   * that a flood of attempts does not flood the operator's log either.
   */
  private refuse(c: Carrier, imei: string | undefined, err: unknown): void {
    const g = toGatewayError(err);
    let sampled = true;
    if (g.code.startsWith('auth.')) {
      this.o.stats.authFailed(g.code);
      sampled = isDeviceId(imei) && this.o.records.authFailure(imei, c.kind, g.code, c.address);
    }
    const cause = (g as { cause?: unknown }).cause;
    this.o.logger[sampled ? 'info' : 'debug'](
      {
        imei,
        carrier: c.kind,
        code: g.code,
        reason: g.message,
        ...(cause === undefined ? {} : { cause: toGatewayError(cause).code }),
      },
      'device refused',
    );
    // A registry outage (bus.*) reaches the device as request.unavailable, never as a bus code.
    const shown = presentError(g, 'handset');
    this.host.fatal(c, shown.code, shown.message, g.retryAfterMs, true);
  }
}

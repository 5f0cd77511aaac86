/**
 * The handshake of a carrier (SPEC.md §5, Auth): Hello opens a new session,
 * Resume continues one (here, or claimed from the edge holding it), and
 * attach puts the carrier on the session and sends Welcome plus the frames
 * the device has not acked. Refusals are fatal Errors, counted against the
 * authentication attempt limits (auth-limiter.ts) and recorded.
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
import {
  ACTIVE,
  AUTHENTICATING,
  CLOSED,
  type Carrier,
  type PollCarrier,
  type WsCarrier,
} from './carriers.ts';
import { DeviceSession } from './device-session.ts';
import { byeFrame } from './frames.ts';
import type { EdgeStats } from './metrics.ts';
import type { SessionRecords } from './session-records.ts';
import type { SessionTable } from './session-table.ts';

/** What the handshake needs from the edge. */
export interface HandshakeHost {
  readonly draining: boolean;
  readonly closed: boolean;
  readonly table: SessionTable;
  /** The peer address of a WebSocket ('' when the engine cannot tell). */
  remoteAddress(socket: unknown): string;
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
    const address = this.addressOf(c);
    const limitKey = isDeviceId(h.imei) ? h.imei : undefined;
    if (this.authRateLimited(c, limitKey, address)) return;
    let info: DeviceInfo;
    try {
      info = await authenticateHello(h, this.o.directory, this.o.tokens);
    } catch (err) {
      this.authFailed(limitKey, address, err);
      this.refuse(c, h.imei, err);
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
    if (h.caps !== undefined) session.caps = h.caps;
    host.addSession(session);
    this.o.logger.debug({ imei, sessionId, carrier: c.kind }, 'session opened');
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
      session = await this.o.finder.findForResume(imei, r.sessionId, r.resumeToken);
      const info = await this.o.directory.lookup(imei);
      if (info.keyEpoch !== undefined) session.keyEpoch = info.keyEpoch;
    } catch (err) {
      const g = toGatewayError(err);
      if (g.code.startsWith('auth.')) {
        this.authFailed(imei, address, g);
        const s = host.table.getById(r.sessionId);
        // The device is gone or disabled: its session ends with it.
        if (s !== undefined && g.code !== 'auth.resume_failed') host.endSession(s, g.code, g.message, false);
        this.refuse(c, imei, g);
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
        this.refuse(c, imei, busy);
        return;
      }
      session = s;
    }
    if (c.state === CLOSED || host.closed) return;
    if (session.ended || host.table.get(imei) !== session) {
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
      heartbeatMs: o.heartbeatMs,
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

  /** The source address of a carrier ('' when the engine cannot tell), IPv4-mapped IPv6 as IPv4. */
  private addressOf(c: Carrier): string {
    let address: string;
    if (c.kind === 'ws') {
      const socket = (c as WsCarrier).socket;
      address = socket === undefined ? '' : this.host.remoteAddress(socket);
    } else {
      const p = c as PollCarrier;
      address = p.opening?.remoteAddress ?? p.current?.remoteAddress ?? '';
    }
    return address.startsWith('::ffff:') ? address.slice(7) : address;
  }

  /** Refuses with auth.rate_limited when the device or the address failed too often lately. */
  private authRateLimited(c: Carrier, imei: string | undefined, address: string): boolean {
    const waitMs = this.o.authLimiter.check(imei, address, this.o.now());
    if (waitMs <= 0) return false;
    this.refuse(c, imei, new GatewayError('auth.rate_limited', undefined, { retryAfterMs: waitMs }));
    return true;
  }

  /** Counts a refused authentication against the attempt limits (not a registry outage, not a limit hit). */
  private authFailed(imei: string | undefined, address: string, err: unknown): void {
    const code = toGatewayError(err).code;
    if (code.startsWith('auth.') && code !== 'auth.rate_limited') {
      this.o.authLimiter.fail(imei, address, this.o.now());
    }
  }

  /** An authentication refusal: fatal Error with the code, counted and logged (never the secret or token). */
  private refuse(c: Carrier, imei: string | undefined, err: unknown): void {
    const g = toGatewayError(err);
    if (g.code.startsWith('auth.')) {
      this.o.stats.authFailed(g.code);
      if (isDeviceId(imei)) this.o.records.authFailure(imei, c.kind, g.code);
    }
    const cause = (g as { cause?: unknown }).cause;
    this.o.logger.info(
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

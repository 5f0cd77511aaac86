/**
 * The per-device log records and usage counters of sessions (service
 * 'session'): one login per Hello and one logout per session end, like an
 * accounting start and stop; disconnects, resumes and carrier switches in
 * between. Byte counts are summed on the session and written at least every
 * USAGE_FLUSH_MS and when a carrier closes, never per frame. Refused
 * attempts are sampled (refusal-records.ts).
 */
import type { Recorder } from '../records/types.ts';
import type { DeviceSession } from './device-session.ts';
import { RefusalRecords } from './refusal-records.ts';

/** Usage bytes of sessions are written at least this often (and when a carrier closes). */
export const USAGE_FLUSH_MS = 60_000;

type CarrierKind = 'ws' | 'poll';

export class SessionRecords {
  private lastUsageFlush: number;
  private readonly refusals: RefusalRecords;

  constructor(
    private readonly recorder: Recorder,
    private readonly now: () => number,
  ) {
    this.lastUsageFlush = now();
    this.refusals = new RefusalRecords(recorder);
  }

  /** A Hello opened a session: connect, and the login of the usage counters. */
  login(imei: string, operator: string, carrier: CarrierKind): void {
    const at = this.now();
    this.recorder.log({ at, imei, kind: 'connect', service: 'session', detail: { carrier } });
    this.recorder.usage({ at, imei, operator, service: 'session', logins: 1 });
  }

  /** A Resume took this session onto a carrier of `carrier` kind (a switch is recorded too). */
  resumed(s: DeviceSession, carrier: CarrierKind): void {
    const at = this.now();
    this.recorder.log({ at, imei: s.imei, kind: 'resume', service: 'session', detail: { carrier } });
    if (s.via !== undefined && s.via !== carrier) {
      this.recorder.log({
        at,
        imei: s.imei,
        kind: 'carrier_switch',
        service: 'session',
        message: `carrier ${s.via} → ${carrier}`,
        detail: { from: s.via, to: carrier },
      });
    }
  }

  /** A carrier of the session closed at `at`; the session stays for a Resume (not a logout). */
  disconnect(s: DeviceSession, carrier: CarrierKind, code: string, at: number): void {
    this.recorder.log({
      at,
      imei: s.imei,
      kind: 'disconnect',
      service: 'session',
      code,
      detail: { carrier },
    });
  }

  /** A Hello or Resume naming `imei` was refused: sampled (refusal-records.ts); true when recorded. */
  authFailure(imei: string, carrier: CarrierKind, code: string, address: string): boolean {
    return this.refusals.refused(imei, carrier, code, address, this.now());
  }

  /** The session ended here (not moved): a takeover when a newer Hello replaced it, and the logout. */
  ended(s: DeviceSession, code: string): void {
    const at = this.now();
    if (code === 'session.replaced') {
      this.recorder.log({ at, imei: s.imei, kind: 'takeover', service: 'session', code });
    }
    this.logout(s, at, code);
  }

  /**
   * A logout is the end of a session, never a carrier drop: one per login
   * (Hello). A device that goes away without coming back is logged out when
   * its resume window lapses (`session.expired`); a session that moves to
   * another edge is not logged out (it goes on there).
   */
  logout(s: DeviceSession, at: number, code: string): void {
    this.recorder.log({ at, imei: s.imei, kind: 'logout', service: 'session', code });
    this.recorder.usage({
      at,
      imei: s.imei,
      ...(s.operator === undefined ? {} : { operator: s.operator }),
      service: 'session',
      logouts: 1,
    });
  }

  /** Writes the session's byte counts to the usage records and zeroes them. */
  flushUsage(s: DeviceSession): void {
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

  /**
   * Flushes every session's bytes, and the counts of refusals not recorded one
   * by one, when USAGE_FLUSH_MS passed since the last time (called by the sweep).
   */
  flushUsageIfDue(sessions: Iterable<DeviceSession>, now: number): void {
    if (now - this.lastUsageFlush < USAGE_FLUSH_MS) return;
    this.lastUsageFlush = now;
    for (const s of sessions) this.flushUsage(s);
    this.refusals.flush(now);
  }
}

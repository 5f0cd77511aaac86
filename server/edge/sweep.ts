/**
 * The one timer of an edge. No session or carrier has a timer of its own
 * (hundreds of thousands sit idle at once); each tick checks them all:
 * the Hello deadline of connections not authenticated yet, heartbeats
 * (silence closes a carrier), held long-poll GETs due for an answer, resume
 * windows of detached sessions, idle compression contexts, old poll
 * tombstones, addresses done with authenticating, and the periodic records flush.
 */
import type { Carrier, PollCarrier } from './carriers.ts';
import type { DeviceSession } from './device-session.ts';
import { EDGE_SILENT_AFTER_HEARTBEATS } from './heartbeat.ts';
import type { PollTombstones } from './poll-tombstones.ts';
import type { PreAuthGate } from './pre-auth.ts';
import type { SessionRecords } from './session-records.ts';
import type { SessionTable } from './session-table.ts';

/** What the sweep needs from the edge. */
export interface SweepHost {
  readonly table: SessionTable;
  /** Carriers without a session yet (opening or authenticating). */
  readonly unattached: Iterable<Carrier>;
  readonly tombstones: PollTombstones;
  readonly records: SessionRecords;
  readonly preAuth: PreAuthGate;
  now(): number;
  /** Nothing heard from the device within the heartbeat window: close the carrier. */
  silent(c: Carrier): void;
  /** No Hello or Resume answered within the Hello deadline: close the carrier. */
  helloOverdue(c: Carrier): void;
  endSession(s: DeviceSession, code: string, message: string, resumable: boolean): void;
}

export interface SweepTimes {
  /** A carrier must have a session this long after it opened. */
  helloTimeoutMs: number;
  heartbeatMs: number;
  resumeWindowMs: number;
  /** A compressing carrier idle this long parks its contexts. */
  compressionIdleMs: number;
}

export class Sweep {
  /** Silence for this long (2.5 of the edge's heartbeats, SPEC.md §5) closes a carrier without a session of its own heartbeat. */
  readonly silenceMs: number;
  private readonly helloTimeoutMs: number;
  private readonly resumeWindowMs: number;
  private readonly compressionIdleMs: number;
  private readonly tickMs: number;
  private timer: ReturnType<typeof setInterval> | undefined;

  constructor(
    private readonly host: SweepHost,
    t: SweepTimes,
  ) {
    this.silenceMs = t.heartbeatMs * EDGE_SILENT_AFTER_HEARTBEATS;
    this.helloTimeoutMs = t.helloTimeoutMs;
    this.resumeWindowMs = t.resumeWindowMs;
    this.compressionIdleMs = t.compressionIdleMs;
    this.tickMs = Math.min(1000, Math.max(50, Math.floor(Math.min(t.heartbeatMs, t.helloTimeoutMs) / 4)));
  }

  start(): void {
    this.timer = setInterval(this.tick, this.tickMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  private readonly tick = (): void => {
    this.run(this.host.now());
  };

  /** One pass over every carrier and session at time `now`. */
  run(now: number): void {
    const host = this.host;
    host.records.flushUsageIfDue(host.table.values(), now);
    for (const c of host.unattached) {
      if (now - c.openedAt > this.helloTimeoutMs) host.helloOverdue(c);
      else if (now - c.lastHeardAt > this.silenceMs) host.silent(c);
    }
    host.preAuth.prune(now);
    for (const s of host.table.values()) {
      const c = s.carrier;
      if (c === undefined) {
        if (now - s.detachedAt > this.resumeWindowMs) {
          host.endSession(s, 'session.expired', 'The session expired.', false);
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
      const silenceMs =
        s.heartbeatMs === undefined ? this.silenceMs : s.heartbeatMs * EDGE_SILENT_AFTER_HEARTBEATS;
      if (now - c.lastHeardAt > silenceMs) {
        host.silent(c);
        continue;
      }
      // Only a compressing WebSocket has compression (long-poll carriers never do).
      if (c.compression !== undefined && now - c.compressedAt > this.compressionIdleMs) c.compression.park();
    }
    host.tombstones.expire(now, this.silenceMs);
  }
}

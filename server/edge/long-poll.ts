/**
 * HTTP long-poll, the carrier for networks that break WebSocket (SPEC.md
 * §4.2), independent of the engine: the engine hands over a PollExchange
 * (method, session headers, query, body) and this decides the answer.
 *
 * - POST without session headers opens a carrier: Hello/Resume → Welcome + replay.
 * - POST with the headers carries frames; answered at once with what is due.
 * - GET (?wait=&ack=) is held until frames are due or `wait` passes; one per
 *   session, a newer one answers the older with an empty batch.
 * - A GET or POST for a session another edge holds (worker processes share the
 *   port) is served by that edge (poll-forward.ts).
 */
import { decodeBatch, encodeBatch } from '../../device-protocol/codec.ts';
import type { DecodeLimits } from '../../device-protocol/messages.ts';
import { imeiOfSessionId, sameSecret } from './auth.ts';
import { ACTIVE, type Carrier, type CarrierHost, PollCarrier, pollStatusFor } from './carriers.ts';
import type { DeviceSession } from './device-session.ts';
import type { PollExchange, PreAuthRefusalAnswer } from './engines/engine.ts';
import { byeFrame, DRAINING_MESSAGE, drainJitterMs, errorFrame, preAuthRefusalFrame } from './frames.ts';
import type { PollTombstones } from './poll-tombstones.ts';
import { addressKey } from './pre-auth.ts';
import type { SessionTable } from './session-table.ts';

/** What long-poll needs from the edge (besides what its carriers need). */
export interface PollHost extends CarrierHost {
  readonly draining: boolean;
  readonly decodeLimits: DecodeLimits;
  readonly table: SessionTable;
  readonly tombstones: PollTombstones;
  /** Forgets a held GET whose client went away (one function for every exchange). */
  readonly onHeldAborted: (ex: PollExchange) => void;
  /** A frame's bytes from a carrier; false when the carrier closed because of it. */
  receive(c: Carrier, bytes: Uint8Array): boolean;
  /** Counts a poll request against the frame rate; false when the carrier closed because of it. */
  pollRequestAllowed(p: PollCarrier): boolean;
  /**
   * Passes a request for a session not held here to the edge that holds it
   * (poll-forward.ts), which answers it; served here again, marked forwarded, when nobody does.
   */
  forwardPoll(imei: string, ex: PollExchange): void;
  /** May a connection not authenticated yet be kept for this peer address (undefined: yes)? */
  admit(address: string): PreAuthRefusalAnswer | undefined;
  /** A carrier without a session yet (counted against the limits before authentication). */
  addUnattached(c: Carrier): void;
  fatal(c: Carrier, code: string, message: string): void;
}

export const DEFAULT_POLL_WAIT_MS = 25_000;
export const MAX_POLL_WAIT_MS = 30_000;

function reply(host: PollHost, ex: PollExchange, status: number, frame: Uint8Array): void {
  host.stats.framesOut++;
  host.stats.bytesOut += frame.length;
  ex.respond(status, encodeBatch([frame]));
}

function refuse(host: PollHost, ex: PollExchange, code: string, message: string): void {
  reply(host, ex, pollStatusFor(code), errorFrame(code, message));
}

function draining(host: PollHost, ex: PollExchange): void {
  reply(host, ex, 503, byeFrame('session.draining', DRAINING_MESSAGE, true, drainJitterMs(host.table.size)));
}

/** Reads `name=<non-negative integer>` from a query string; undefined when absent or malformed. */
export function queryInt(query: string, name: string): number | undefined {
  if (query.length === 0) return undefined;
  for (const part of query.split('&')) {
    const eq = part.indexOf('=');
    if (eq < 0 || part.slice(0, eq) !== name) continue;
    const v = part.slice(eq + 1);
    if (!/^[0-9]{1,15}$/.test(v)) return undefined;
    return Number(v);
  }
  return undefined;
}

/** How long a GET with this query is held at most. */
export function pollWaitMs(query: string): number {
  return Math.min(queryInt(query, 'wait') ?? DEFAULT_POLL_WAIT_MS, MAX_POLL_WAIT_MS);
}

const onOpeningAborted = (ex: PollExchange): void => {
  const p = ex.carrier;
  if (p !== undefined && p.opening === ex) p.opening = undefined;
  ex.carrier = undefined;
};

export function handlePoll(host: PollHost, ex: PollExchange): void {
  if (ex.method === 'POST' && ex.sessionId === '') {
    openPoll(host, ex);
    return;
  }
  if (ex.sessionId === '') {
    refuse(
      host,
      ex,
      'auth.resume_failed',
      'A poll request needs the X-MMGW-Session and X-MMGW-Token headers.',
    );
    return;
  }
  const session = host.table.getById(ex.sessionId);
  // Held by another edge (a worker process sharing the port): that edge serves it
  // (poll-forward.ts), also while this one drains; when none does, it comes back marked forwarded.
  if (session === undefined && !ex.forwarded && ex.token !== '') {
    const imei = imeiOfSessionId(ex.sessionId);
    if (imei !== undefined) {
      host.forwardPoll(imei, ex);
      return;
    }
  }
  if (host.draining) {
    draining(host, ex);
    return;
  }
  // The last frame of a long-poll carrier that ended while no GET was held, unless
  // the session has gone on with another long-poll carrier.
  if (session?.carrier?.kind !== 'poll') {
    const tomb = host.tombstones.take(ex.sessionId, ex.token);
    if (tomb !== undefined) {
      host.stats.framesOut++;
      host.stats.bytesOut += tomb.frame.length;
      ex.respond(tomb.status, encodeBatch([tomb.frame]));
      return;
    }
  }
  if (session === undefined || !sameSecret(session.resumeToken, ex.token)) {
    refuse(host, ex, 'auth.resume_failed', 'No such session; start a new one.');
    return;
  }
  let c = session.carrier;
  if (c === undefined) {
    c = attachQuietly(host, session);
  } else if (c.kind !== 'poll') {
    reply(host, ex, 410, byeFrame('session.moved', 'The session moved to another connection.', true));
    return;
  }
  const p = c as PollCarrier;
  if (ex.method === 'POST') {
    postFrames(host, p, ex);
    return;
  }
  p.current = ex;
  if (!host.pollRequestAllowed(p)) return;
  p.current = undefined;
  const ack = queryInt(ex.query, 'ack');
  if (ack !== undefined) session.ack(ack);
  const wait = pollWaitMs(ex.query);
  const older = p.held;
  if (older !== undefined) {
    p.held = undefined;
    older.carrier = undefined;
    p.answer(older, []);
  }
  const frames: Uint8Array[] = [];
  p.takeOutbox(frames);
  p.collect(frames, session.ackedSeq + 1);
  if (frames.length > 0 || wait === 0) {
    p.answer(ex, frames);
    return;
  }
  p.held = ex;
  p.heldUntil = host.now() + wait;
  ex.carrier = p;
  ex.onAborted = host.onHeldAborted;
}

/**
 * Puts a long-poll carrier on a detached session without a Welcome: a poll
 * request with the right session headers continues where the device left
 * off (a flaky network may let the carrier time out between two polls).
 */
function attachQuietly(host: PollHost, session: DeviceSession): PollCarrier {
  const p = new PollCarrier(host);
  host.tombstones.forget(session.id);
  session.carrier = p;
  session.detachedAt = 0;
  p.session = session;
  p.state = ACTIVE;
  p.sentSeq = session.ackedSeq;
  return p;
}

function openPoll(host: PollHost, ex: PollExchange): void {
  if (host.draining) {
    draining(host, ex);
    return;
  }
  // The engine asked before it read the body; other opening POSTs may have come in meanwhile.
  const refusal = host.admit(ex.remoteAddress);
  if (refusal !== undefined) {
    reply(host, ex, refusal.status, preAuthRefusalFrame(refusal.status, refusal.retryAfterSec));
    return;
  }
  const batch = decodeBatch(ex.body, host.decodeLimits);
  if (!batch.ok) {
    refuse(host, ex, batch.error.code, batch.error.message);
    return;
  }
  if (batch.frames.length === 0) {
    refuse(host, ex, 'protocol.bad_state', 'The opening POST must carry Hello or Resume.');
    return;
  }
  const p = new PollCarrier(host, addressKey(ex.remoteAddress));
  p.opening = ex;
  ex.carrier = p;
  ex.onAborted = onOpeningAborted;
  host.addUnattached(p);
  for (const bytes of batch.frames) {
    if (!host.receive(p, bytes)) break;
  }
}

function postFrames(host: PollHost, p: PollCarrier, ex: PollExchange): void {
  p.current = ex;
  p.lastHeardAt = host.now();
  const batch = decodeBatch(ex.body, host.decodeLimits);
  if (!batch.ok) {
    host.fatal(p, batch.error.code, batch.error.message);
    return;
  }
  for (const bytes of batch.frames) {
    if (!host.receive(p, bytes)) return; // the fatal Error answered this POST
  }
  if (p.current !== ex) return;
  p.current = undefined;
  const frames: Uint8Array[] = [];
  p.takeOutbox(frames);
  // Sequenced frames go to the held GET when there is one; otherwise what is new rides on this answer.
  if (p.held === undefined) p.collect(frames, p.sentSeq + 1);
  p.answer(ex, frames);
}

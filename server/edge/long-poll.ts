/**
 * HTTP long-poll, the carrier for networks that break WebSocket (SPEC.md
 * §4.2), independent of the engine: the engine hands over a PollExchange
 * (method, session headers, query, body) and this decides the answer.
 *
 * - POST without session headers opens a carrier: Hello/Resume → Welcome + replay.
 * - POST with the headers carries frames; answered at once with what is due.
 * - GET (?wait=&ack=) is held until frames are due or `wait` passes; one per
 *   session, a newer one answers the older with an empty batch.
 */
import { decodeBatch, encodeBatch } from '../../device-protocol/codec.ts';
import { sameSecret } from './auth.ts';
import { PollCarrier, pollStatusFor } from './carriers.ts';
import type { EdgeCore } from './edge-core.ts';
import type { PollExchange } from './engines/engine.ts';
import { byeFrame, DRAINING_MESSAGE, drainJitterMs, errorFrame } from './frames.ts';

export const DEFAULT_POLL_WAIT_MS = 25_000;
export const MAX_POLL_WAIT_MS = 30_000;

function reply(core: EdgeCore, ex: PollExchange, status: number, frame: Uint8Array): void {
  core.stats.framesOut++;
  core.stats.bytesOut += frame.length;
  ex.respond(status, encodeBatch([frame]));
}

function refuse(core: EdgeCore, ex: PollExchange, code: string, message: string): void {
  reply(core, ex, pollStatusFor(code), errorFrame(code, message));
}

function draining(core: EdgeCore, ex: PollExchange): void {
  reply(core, ex, 503, byeFrame('session.draining', DRAINING_MESSAGE, true, drainJitterMs()));
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

const onOpeningAborted = (ex: PollExchange): void => {
  const p = ex.carrier;
  if (p !== undefined && p.opening === ex) p.opening = undefined;
  ex.carrier = undefined;
};

export function handlePoll(core: EdgeCore, ex: PollExchange): void {
  if (ex.method === 'POST' && ex.sessionId === '') {
    openPoll(core, ex);
    return;
  }
  if (ex.sessionId === '') {
    refuse(
      core,
      ex,
      'auth.resume_failed',
      'A poll request needs the X-MMGW-Session and X-MMGW-Token headers.',
    );
    return;
  }
  if (core.draining) {
    draining(core, ex);
    return;
  }
  const session = core.table.getById(ex.sessionId);
  // The last frame of a long-poll carrier that ended while no GET was held, unless
  // the session has gone on with another long-poll carrier.
  if (session?.carrier?.kind !== 'poll') {
    const tomb = core.takeTombstone(ex.sessionId, ex.token);
    if (tomb !== undefined) {
      core.stats.framesOut++;
      core.stats.bytesOut += tomb.frame.length;
      ex.respond(tomb.status, encodeBatch([tomb.frame]));
      return;
    }
  }
  // Held by another edge (a worker process sharing the port): claim it, then serve this request.
  if (session === undefined && core.pollMiss(ex)) return;
  if (session === undefined || !sameSecret(session.resumeToken, ex.token)) {
    refuse(core, ex, 'auth.resume_failed', 'No such session; start a new one.');
    return;
  }
  let c = session.carrier;
  if (c === undefined) {
    c = core.attachPollQuietly(session);
  } else if (c.kind !== 'poll') {
    reply(core, ex, 410, byeFrame('session.moved', 'The session moved to another connection.', true));
    return;
  }
  const p = c as PollCarrier;
  if (ex.method === 'POST') {
    postFrames(core, p, ex);
    return;
  }
  p.current = ex;
  if (!core.pollRequestAllowed(p)) return;
  p.current = undefined;
  const ack = queryInt(ex.query, 'ack');
  if (ack !== undefined) session.ack(ack);
  const wait = Math.min(queryInt(ex.query, 'wait') ?? DEFAULT_POLL_WAIT_MS, MAX_POLL_WAIT_MS);
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
  p.heldUntil = core.now() + wait;
  ex.carrier = p;
  ex.onAborted = core.onHeldAborted;
}

function openPoll(core: EdgeCore, ex: PollExchange): void {
  if (core.draining) {
    draining(core, ex);
    return;
  }
  const batch = decodeBatch(ex.body, core.decodeLimits);
  if (!batch.ok) {
    refuse(core, ex, batch.error.code, batch.error.message);
    return;
  }
  if (batch.frames.length === 0) {
    refuse(core, ex, 'protocol.bad_state', 'The opening POST must carry Hello or Resume.');
    return;
  }
  const p = new PollCarrier(core);
  p.opening = ex;
  ex.carrier = p;
  ex.onAborted = onOpeningAborted;
  core.addUnattached(p);
  for (const bytes of batch.frames) {
    if (!core.receive(p, bytes)) break;
  }
}

function postFrames(core: EdgeCore, p: PollCarrier, ex: PollExchange): void {
  p.current = ex;
  p.lastHeardAt = core.now();
  const batch = decodeBatch(ex.body, core.decodeLimits);
  if (!batch.ok) {
    core.fatal(p, batch.error.code, batch.error.message);
    return;
  }
  for (const bytes of batch.frames) {
    if (!core.receive(p, bytes)) return; // the fatal Error answered this POST
  }
  if (p.current !== ex) return;
  p.current = undefined;
  const frames: Uint8Array[] = [];
  p.takeOutbox(frames);
  // Sequenced frames go to the held GET when there is one; otherwise what is new rides on this answer.
  if (p.held === undefined) p.collect(frames, p.sentSeq + 1);
  p.answer(ex, frames);
}

/**
 * The two carriers of a session (SPEC.md §4), engine-independent: the
 * WebSocket carrier pushes frames as they come and paces a replay by the
 * socket's drain; the long-poll carrier answers held GETs with batches.
 * Either one ends with one last frame (fatal Error or Bye) and a close.
 *
 * Carriers hold no timers and no closures: silence and held-GET deadlines
 * are checked by the edge's one sweep.
 */
import { encodeBatch } from '../../device-protocol/codec.ts';
import { CarrierCompression } from '../../device-protocol/compression.ts';
import { longPollStatusOf } from '../../device-protocol/errors.ts';
import { DEFAULT_LIMITS, type Frame } from '../../device-protocol/messages.ts';
import type { DeviceSession } from './device-session.ts';

declare module './device-session.ts' {
  /** A session's carrier is one of these (see device-session.ts). */
  interface CarrierOfSession {
    carrier: Carrier;
  }
}

/** Socket operations of one engine; one driver object serves every socket of that engine. */
export interface WsDriver {
  /** Queues one binary message. */
  send(socket: unknown, bytes: Uint8Array): void;
  /** Queues several binary messages, in order, written together where the engine can (cork). */
  sendMany(socket: unknown, frames: readonly Uint8Array[]): void;
  /** Bytes queued in user space (and, where the engine can tell, not yet written to the socket). */
  bufferedAmount(socket: unknown): number;
  /** Closes after what is queued has been written (WebSocket close frame with code and reason). */
  end(socket: unknown, code: number, reason: string): void;
  /** Closes at once, dropping what is queued. */
  terminate(socket: unknown): void;
  /** Calls carrier.onDrain() once when the queued bytes have been written (uWS does so by itself). */
  armDrain(socket: unknown, carrier: WsCarrier): void;
}

/** One HTTP long-poll exchange as the engine hands it over (SPEC.md §4.2). */
export interface PollExchange {
  method: string;
  /** `X-MMGW-Session` or '' when absent. */
  sessionId: string;
  /** `X-MMGW-Token` or '' when absent. */
  token: string;
  /** Raw query string without '?'. */
  query: string;
  /** The peer's IP address as text ('' when unknown; read only for an opening POST). */
  readonly remoteAddress: string;
  /** The request body (POST); empty for GET. */
  body: Uint8Array;
  /** Set by the engine when the client went away before the answer. */
  aborted: boolean;
  /** Set by the core for a held GET: called by the engine when the client goes away. */
  onAborted: ((ex: PollExchange) => void) | undefined;
  /** Set once the request was passed to another edge for its session, or came from one (poll-forward.ts): at most once. */
  forwarded?: boolean;
  /** Held by a poll carrier: a back reference used to forget it on abort. */
  carrier: PollCarrier | undefined;
  /** Answers once (later calls and calls after an abort do nothing). */
  respond(status: number, body: Uint8Array, closeConnection?: boolean): void;
}

import type { EdgeLimits } from './limits.ts';
import type { EdgeStats } from './metrics.ts';
import type { AddressEntry } from './pre-auth.ts';

/** Carrier states (SPEC.md §5): waiting for Hello/Resume, checking it, carrying frames, gone. */
export const OPENING = 0;
export const AUTHENTICATING = 1;
export const ACTIVE = 2;
export const CLOSED = 3;

/** WebSocket close codes; informational only (the device acts on the last frame's code). */
export const CLOSE_BYE = 4000;
export const CLOSE_FATAL = 4001;

/** Most control frames (Pong …) kept for a long-poll device between its requests. */
const MAX_POLL_OUTBOX = 64;

/** What carriers need from the edge core. */
export interface CarrierHost {
  readonly limits: EdgeLimits;
  readonly stats: EdgeStats;
  readonly wsDriver: WsDriver;
  now(): number;
  /** A WebSocket's queued bytes passed maxQueuedBytes. */
  backpressure(carrier: WsCarrier): void;
  /** Answer this carrier's held GET soon (coalesced across carriers). */
  schedulePollFlush(carrier: PollCarrier): void;
  /** Write this WebSocket's newly appended frames soon (coalesced: one corked write per socket per turn). */
  scheduleWsFlush(carrier: WsCarrier): void;
  /** Keep a poll carrier's last frame for its next request (it had no GET held). */
  pollTombstone(carrier: PollCarrier, status: number, frame: Uint8Array): void;
}

export abstract class Carrier {
  abstract readonly kind: 'ws' | 'poll';
  session: DeviceSession | undefined = undefined;
  state = OPENING;
  /** When the connection opened (the Hello deadline counts from here). */
  openedAt: number;
  lastHeardAt: number;
  /**
   * Until the carrier has a session: its source address's entry of the
   * unauthenticated connections, which also holds the frame bucket (pre-auth.ts).
   */
  preAuth: AddressEntry | undefined = undefined;
  /** Frames that arrived after Hello/Resume and before Welcome; handled after Welcome. */
  early: Frame[] | undefined = undefined;
  /** Frame compression (SPEC.md §4.4), set at Welcome on a WebSocket whose device asked; else none. */
  compression: CarrierCompression | undefined = undefined;
  /** When a frame was last compressed or inflated here (the sweep parks contexts idle for long). */
  compressedAt = 0;

  /** `address`: the source address's key (pre-auth.ts addressKey), '' when the engine cannot tell. */
  constructor(
    readonly host: CarrierHost,
    readonly address = '',
  ) {
    const now = host.now();
    this.openedAt = now;
    this.lastHeardAt = now;
  }

  /**
   * Sends Welcome, then every sequenced frame from `fromSeq` on; with
   * `compress` (WebSocket only, Welcome says so) every frame after Welcome
   * is compressed (SPEC.md §4.4).
   */
  abstract welcome(frame: Uint8Array, fromSeq: number, compress: boolean): void;
  /** A sequenced frame with this seq was appended to the session. */
  abstract appended(seq: number): void;
  /** Sends a frame that is not sequenced (Pong). */
  abstract control(frame: Uint8Array): void;
  /** Sends the last frame (fatal Error or Bye) and closes. */
  abstract finish(frame: Uint8Array, code: string, bye: boolean): void;
  /** Sends an already sequenced frame again (a repeated request answered from memory). */
  abstract resend(seq: number): void;
}

export class WsCarrier extends Carrier {
  readonly kind = 'ws';
  /** The engine's socket, set on open. */
  socket: unknown = undefined;
  /** Seq of the next sequenced frame to write. */
  pumpSeq = 1;
  drainArmed = false;

  /** Is this carrier in the host's list of carriers to flush this turn? */
  flushQueued = false;

  /** The frame as it goes on the air: compressed where this carrier compresses and it is worth it. */
  private wire(frame: Uint8Array): Uint8Array {
    const out = this.compression?.outgoing(frame) ?? frame;
    if (out !== frame) this.compressedAt = this.host.now();
    return out;
  }

  private send(frame: Uint8Array): void {
    const bytes = this.wire(frame);
    const stats = this.host.stats;
    stats.framesOut++;
    stats.bytesOut += bytes.length;
    if (this.session !== undefined) this.session.bytesOut += bytes.length;
    this.host.wsDriver.send(this.socket, bytes);
  }

  welcome(frame: Uint8Array, fromSeq: number, compress: boolean): void {
    this.send(frame);
    if (compress) this.compression = new CarrierCompression();
    this.pumpSeq = fromSeq;
    this.pump();
  }

  /**
   * A live frame was appended. It leaves at the end of this turn together
   * with every other frame appended meanwhile (a burst from the bus becomes
   * one corked write, not one syscall per frame).
   */
  appended(seq: number): void {
    if (this.state !== ACTIVE || seq !== this.pumpSeq || this.flushQueued) return; // catching up: the pump gets there
    this.flushQueued = true;
    this.host.scheduleWsFlush(this);
  }

  /** Writes every live frame appended since the last flush; called by the host, once per turn. */
  flushLive(): void {
    this.flushQueued = false;
    const session = this.session;
    if (this.state !== ACTIVE || session === undefined || this.drainArmed) return;
    const first = this.pumpSeq;
    const end = session.nextSeq;
    if (first >= end) return;
    const frames: Uint8Array[] = [];
    let bytes = 0;
    for (let seq = first; seq < end; seq++) {
      const frame = session.frameAt(seq);
      if (frame === undefined) continue;
      const out = this.wire(frame);
      frames.push(out);
      bytes += out.length;
    }
    this.pumpSeq = end;
    const stats = this.host.stats;
    stats.framesOut += frames.length;
    stats.bytesOut += bytes;
    session.bytesOut += bytes;
    this.host.wsDriver.sendMany(this.socket, frames);
    // Live frames go out at once; a reader too slow for them trips the limit.
    if (this.host.wsDriver.bufferedAmount(this.socket) > this.host.limits.maxQueuedBytes) {
      this.host.backpressure(this);
    }
  }

  /**
   * Writes the frames not yet written, but only while the socket's queue is
   * below half the limit: a replay after a resume must not trip the limit
   * that made the device resume. The rest follows on drain.
   */
  pump(): void {
    const session = this.session!;
    const driver = this.host.wsDriver;
    const lowWater = this.host.limits.maxQueuedBytes / 2;
    if (this.pumpSeq <= session.ackedSeq) this.pumpSeq = session.ackedSeq + 1;
    while (this.state === ACTIVE && this.pumpSeq < session.nextSeq) {
      if (driver.bufferedAmount(this.socket) > lowWater) {
        if (!this.drainArmed) {
          this.drainArmed = true;
          driver.armDrain(this.socket, this);
        }
        return;
      }
      const frame = session.frameAt(this.pumpSeq);
      this.pumpSeq++;
      if (frame !== undefined) this.send(frame);
    }
  }

  onDrain(): void {
    if (!this.drainArmed) return;
    this.drainArmed = false;
    if (this.state === ACTIVE && this.session !== undefined) this.pump();
  }

  control(frame: Uint8Array): void {
    if (this.state !== CLOSED) this.send(frame);
  }

  finish(frame: Uint8Array, code: string, bye: boolean): void {
    if (this.state === CLOSED) return;
    // Frames appended this turn leave before the farewell (a resumable Bye keeps them anyway).
    if (this.flushQueued) this.flushLive();
    this.state = CLOSED;
    this.host.stats.carrierClosed(code);
    if (this.socket === undefined) return;
    this.send(frame);
    this.host.wsDriver.end(this.socket, bye ? CLOSE_BYE : CLOSE_FATAL, code);
  }

  resend(seq: number): void {
    if (this.state !== ACTIVE || seq >= this.pumpSeq) return; // not written yet: the pump will
    const frame = this.session?.frameAt(seq);
    if (frame !== undefined) this.send(frame);
  }
}

/** HTTP status of a long-poll answer that carries a fatal Error or a Bye: the errors registry's rule. */
export const pollStatusFor = longPollStatusOf;

export class PollCarrier extends Carrier {
  readonly kind = 'poll';
  /** The opening POST (Hello/Resume), answered with Welcome. */
  opening: PollExchange | undefined = undefined;
  /** A POST whose frames are being handled (its answer carries a fatal Error raised meanwhile). */
  current: PollExchange | undefined = undefined;
  /** The one GET held open for frames. */
  held: PollExchange | undefined = undefined;
  /** The last answer carried frames: the next GET costs no frame token (SPEC.md §5.1). */
  repollOwed = false;
  heldUntil = 0;
  /** Highest seq included in any answer so far. */
  sentSeq = 0;
  /** Control frames (Pong …) waiting for the next answer. */
  outbox: Uint8Array[] | undefined = undefined;
  flushQueued = false;

  private respond(ex: PollExchange, status: number, frames: Uint8Array[]): void {
    // The device polls again at once after frames: that GET is the gateway's pace, not the device's.
    if (frames.length > 0) this.repollOwed = true;
    const stats = this.host.stats;
    let bytes = 0;
    for (const f of frames) bytes += f.length;
    stats.framesOut += frames.length;
    stats.bytesOut += bytes;
    if (this.session !== undefined) this.session.bytesOut += bytes;
    ex.respond(status, encodeBatch(frames));
  }

  /** Moves the outbox into `frames`. */
  takeOutbox(frames: Uint8Array[]): void {
    if (this.outbox === undefined) return;
    for (const f of this.outbox) frames.push(f);
    this.outbox = undefined;
  }

  /**
   * Appends sequenced frames from `fromSeq` on, up to maxQueuedBytes per
   * answer (at least one frame) and the codec's batch limit.
   */
  collect(frames: Uint8Array[], fromSeq: number): void {
    const session = this.session!;
    let bytes = 0;
    for (const f of frames) bytes += f.length;
    const budget = this.host.limits.maxQueuedBytes;
    for (let seq = Math.max(fromSeq, session.ackedSeq + 1); seq < session.nextSeq; seq++) {
      const frame = session.frameAt(seq);
      if (frame === undefined) continue;
      if (frames.length >= DEFAULT_LIMITS.maxBatchFrames) break;
      if (frames.length > 0 && bytes + frame.length > budget) break;
      frames.push(frame);
      bytes += frame.length;
      if (seq > this.sentSeq) this.sentSeq = seq;
    }
  }

  welcome(frame: Uint8Array, fromSeq: number): void {
    const ex = this.opening;
    this.opening = undefined;
    this.sentSeq = fromSeq - 1;
    if (ex === undefined) return;
    const frames = [frame];
    this.takeOutbox(frames);
    this.collect(frames, fromSeq);
    this.respond(ex, 200, frames);
  }

  appended(_seq: number): void {
    if (this.held !== undefined) this.host.schedulePollFlush(this);
  }

  control(frame: Uint8Array): void {
    if (this.state === CLOSED) return;
    this.outbox ??= [];
    if (this.outbox.length >= MAX_POLL_OUTBOX) this.outbox.shift();
    this.outbox.push(frame);
    if (this.held !== undefined) this.host.schedulePollFlush(this);
  }

  /** Answers the held GET with what is due (called from the coalesced flush or the sweep). */
  flush(force: boolean): void {
    this.flushQueued = false;
    const ex = this.held;
    if (ex === undefined || this.state !== ACTIVE) return;
    const frames: Uint8Array[] = [];
    this.takeOutbox(frames);
    this.collect(frames, this.session!.ackedSeq + 1);
    if (frames.length === 0 && !force) return;
    this.held = undefined;
    ex.carrier = undefined;
    this.lastHeardAt = this.host.now();
    this.respond(ex, 200, frames);
  }

  /** Answers an exchange that is not the held GET (a POST, or a GET that is answered at once). */
  answer(ex: PollExchange, frames: Uint8Array[]): void {
    this.respond(ex, 200, frames);
  }

  finish(frame: Uint8Array, code: string, _bye: boolean): void {
    if (this.state === CLOSED) return;
    this.state = CLOSED;
    this.host.stats.carrierClosed(code);
    const { opening, current, held } = this;
    this.opening = undefined;
    this.current = undefined;
    this.held = undefined;
    if (opening === undefined && current === undefined && held === undefined) {
      this.host.pollTombstone(this, pollStatusFor(code), frame);
      return;
    }
    if (opening !== undefined) this.respond(opening, pollStatusFor(code), [frame]);
    if (current !== undefined) this.respond(current, pollStatusFor(code), [frame]);
    if (held !== undefined) {
      // The held GET is answered 200: the frame inside says what happened.
      held.carrier = undefined;
      this.respond(held, 200, [frame]);
    }
  }

  resend(_seq: number): void {
    // Nothing to do: every GET returns all unacked frames again.
  }
}

/**
 * The device's side of the sequenced stream (SPEC.md §4.2, §5): frames
 * delivered once and in seq order, frames beyond a gap kept until it fills
 * (or given up when it does not), and cumulative acks, at once every
 * `ACK_EVERY_FRAMES` frames, else `ackIntervalMs` after a sequenced frame.
 * Which carrier is live, and what a frame means to the application, is the
 * host's business (handset-session.ts).
 */

import type { SequencedFrame } from '../messages.ts';
import type { TimerEffects } from './effects.ts';

/** Ack at once when this many sequenced frames are unacked (SPEC.md §5). */
export const ACK_EVERY_FRAMES = 100;
/**
 * Sequenced frames kept that arrived ahead of a gap (SPEC.md §4.2: answers to
 * concurrent long-poll requests may arrive out of order). As many as the
 * gateway keeps for replay by default: more means the gap will not fill.
 */
export const MAX_FRAMES_AHEAD = 1000;
/** A gap that has not filled after this long is given up: the session resumes from before it. */
export const GAP_PATIENCE_MS = 5000;

export interface SequenceHost {
  readonly timers: TimerEffects;
  now(): number;
  /** The live carrier got its Welcome: acks may go out on it. */
  live(): boolean;
  /** Sends an Ack on the live carrier. */
  sendAck(seq: number): void;
  /** The next frame in seq order, for the application. */
  deliver(frame: SequencedFrame): void;
  /** A gap will not fill on this carrier: drop it, so that a Resume gets the frames replayed. */
  giveUp(reason: string): void;
}

export class SequenceTracker {
  readonly #host: SequenceHost;
  readonly #ackIntervalMs: number;
  /** The last seq delivered: every frame up to it reached the application, in order. */
  #lastSeq = 0;
  /** Frames received beyond a gap, by seq, delivered once the gap fills. */
  readonly #ahead = new Map<number, SequencedFrame>();
  #ackedSeq = 0;
  /** The armed ack timer acks again even with nothing new (a duplicate arrived). */
  #ackForce = false;

  constructor(host: SequenceHost, ackIntervalMs: number) {
    this.#host = host;
    this.#ackIntervalMs = ackIntervalMs;
  }

  get lastSeq(): number {
    return this.#lastSeq;
  }

  /** A new session numbers its frames from 1 again; nothing kept from before it counts. */
  reset(): void {
    this.#lastSeq = 0;
    this.#ackedSeq = 0;
    this.#ahead.clear();
    this.#host.timers.cancel('gap');
    this.#host.timers.cancel('ack');
  }

  /** A Resume acks everything up to lastSeq (SPEC.md §5). */
  resuming(): void {
    this.#ackedSeq = this.#lastSeq;
    this.#host.timers.cancel('ack');
  }

  /** The carrier is gone: what was kept beyond a gap comes again with the next Resume's replay. */
  stop(): void {
    this.#ahead.clear();
    this.#host.timers.cancel('gap');
    this.#host.timers.cancel('ack');
  }

  onFrame(frame: SequencedFrame): void {
    if (frame.seq <= this.#lastSeq || this.#ahead.has(frame.seq)) {
      // Already delivered or kept (a replay after resume, a repeated GET): drop it,
      // but ack again so that the gateway stops sending it.
      this.#scheduleAck(true);
      return;
    }
    if (frame.seq > this.#lastSeq + 1) {
      // A gap: what comes later waits until it fills, and only what came in order is acked,
      // so the gateway keeps (and the next GET or a Resume brings) what is missing.
      if (this.#ahead.size >= MAX_FRAMES_AHEAD) {
        this.#host.giveUp(`frames ahead of seq ${this.#lastSeq + 1} never came`);
        return;
      }
      this.#ahead.set(frame.seq, frame);
      if (!this.#host.timers.armed('gap'))
        this.#host.timers.schedule('gap', this.#host.now() + GAP_PATIENCE_MS);
      return;
    }
    this.#deliver(frame);
    for (
      let next = this.#ahead.get(this.#lastSeq + 1);
      next !== undefined;
      next = this.#ahead.get(this.#lastSeq + 1)
    ) {
      this.#ahead.delete(next.seq);
      this.#deliver(next);
    }
    if (this.#ahead.size === 0) this.#host.timers.cancel('gap');
    this.#scheduleAck(false);
  }

  /** The gap timer: the frames before the ones kept did not come on this carrier. */
  onGapTimer(): void {
    if (this.#ahead.size > 0) this.#host.giveUp(`seq ${this.#lastSeq + 1} did not come`);
  }

  onAckTimer(): void {
    this.#sendAck(this.#ackForce);
  }

  /** The carrier acked up to `seq` itself (long-poll `GET ?ack=`): only what was received counts. */
  carrierAcked(seq: number): void {
    if (seq <= this.#ackedSeq || seq > this.#lastSeq) return;
    this.#ackedSeq = seq;
    if (this.#ackedSeq >= this.#lastSeq) this.#host.timers.cancel('ack');
  }

  /** Acks what is unacked now (the session is closing). */
  flush(): void {
    if (this.#lastSeq > this.#ackedSeq) this.#sendAck();
  }

  #deliver(frame: SequencedFrame): void {
    this.#lastSeq = frame.seq;
    this.#host.deliver(frame);
  }

  #scheduleAck(duplicate: boolean): void {
    if (!this.#host.live()) return;
    if (this.#lastSeq - this.#ackedSeq >= ACK_EVERY_FRAMES) {
      this.#sendAck();
      return;
    }
    if (this.#host.timers.armed('ack')) return;
    if (!duplicate && this.#lastSeq <= this.#ackedSeq) return;
    this.#ackForce = duplicate;
    this.#host.timers.schedule('ack', this.#host.now() + this.#ackIntervalMs);
  }

  #sendAck(force = false): void {
    this.#host.timers.cancel('ack');
    if (!this.#host.live()) return;
    if (this.#lastSeq <= this.#ackedSeq && !(force && this.#lastSeq > 0)) return;
    this.#ackedSeq = this.#lastSeq;
    this.#host.sendAck(this.#lastSeq);
  }
}

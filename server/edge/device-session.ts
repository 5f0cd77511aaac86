/**
 * One device session: identity, sequencing, the replay buffer and the memory
 * of answered requests. It outlives its carriers (WebSocket or long-poll) and
 * can move between them and, by a bus claim, to another edge.
 *
 * Kept small on purpose (hundreds of thousands sit idle at once): no timers,
 * no closures, and the replay buffer, the answered-id memory and the
 * in-flight set are allocated only when first needed and dropped when empty.
 */
import type { Capabilities } from '../../device-protocol/messages.ts';
import type { Subscription } from '../bus/bus.ts';
import { MAX_ANSWERED_IDS, type RateState } from './limits.ts';
import { ReplayBuffer } from './replay-buffer.ts';

/**
 * The carrier a session has attached. carriers.ts names its Carrier here by
 * declaration merging (`interface CarrierOfSession { carrier: Carrier }`), so
 * that a session and its carrier can point at each other without the two
 * modules importing each other.
 */
// biome-ignore lint/suspicious/noEmptyInterface: filled in by carriers.ts
export interface CarrierOfSession {}
type SessionCarrier = CarrierOfSession extends { carrier: infer C } ? C : never;

/** What a claiming edge receives over the bus to rebuild a session (SessionSnapshot v1). */
export interface SessionSnapshot {
  v: 1;
  sessionId: string;
  resumeToken: string;
  imei: string;
  /** Seq the next sequenced frame will take. */
  nextSeq: number;
  /** Seq of frames[0]; every frame before it is acked. */
  firstSeq: number;
  /** Unacked sequenced frames, encoded, in seq order. */
  frames: Uint8Array[];
  /** Answered request ids and the seq of their answer, oldest first. */
  answered: [string, number][];
  /** The device's operator (usage records), when known. */
  operator?: string;
  /** Kind of the carrier the session last had. */
  via?: 'ws' | 'poll';
  /** Hello caps of the device. */
  caps?: Capabilities;
}

export class DeviceSession implements RateState {
  /** The carrier currently attached, if any (undefined: detached). */
  carrier: SessionCarrier | undefined = undefined;
  /** When the session lost its carrier (0 while attached). */
  detachedAt = 0;
  ended = false;
  /** Ended because another edge claimed it: answers still due here are passed on to that edge. */
  moved = false;
  /**
   * Wall-clock time of the newest Resume that took this session here (not in the
   * snapshot: local). A claim issued before it comes from an attempt the device
   * already gave up and must not take the session from the current one.
   */
  resumedAt = 0;
  /** DeviceInfo.keyEpoch from the last Hello or Resume here: put in the tokens this session issues. */
  keyEpoch: string | undefined = undefined;
  /**
   * The heartbeat asked of the device (heartbeat.ts), from its service profile
   * at the last Hello or Resume here (not in the snapshot: the claimer's Resume
   * looks the device up again); undefined: the edge's.
   */
  heartbeatMs: number | undefined = undefined;
  /** Seq the next sequenced frame takes. */
  nextSeq = 1;
  /** Highest seq the device acked (cumulative). */
  ackedSeq = 0;
  sub: Subscription | undefined = undefined;
  /** Operator of the device, for usage records. */
  operator: string | undefined = undefined;
  /** What the device can show (Hello caps), passed to the transport with each request. */
  caps: Capabilities | undefined = undefined;
  /** Kind of the last carrier attached (to record carrier switches). */
  via: 'ws' | 'poll' | undefined = undefined;
  /** Frame bytes from and to the device not yet written to the usage records. */
  bytesIn = 0;
  bytesOut = 0;
  /**
   * The device's frame bucket (limits.ts takeToken): it belongs to the session,
   * not the carrier, so a Resume onto a new carrier goes on with what is left.
   * Not in the snapshot: a session claimed by another edge starts full there.
   */
  tokens = Number.POSITIVE_INFINITY;
  tokensAt = 0;
  private replay: ReplayBuffer | undefined = undefined;
  private answered: Map<string, number> | undefined = undefined;
  private inflight: Set<string> | undefined = undefined;

  constructor(
    readonly id: string,
    readonly imei: string,
    readonly resumeToken: string,
  ) {}

  get lastSeq(): number {
    return this.nextSeq - 1;
  }

  get replayFrames(): number {
    return this.replay === undefined ? 0 : this.replay.length;
  }

  get replayBytes(): number {
    return this.replay === undefined ? 0 : this.replay.bytes;
  }

  /** Appends an encoded sequenced frame that carries seq = nextSeq; returns that seq. */
  append(frame: Uint8Array): number {
    const seq = this.nextSeq;
    this.replay ??= new ReplayBuffer(seq);
    this.replay.push(seq, frame);
    this.nextSeq = seq + 1;
    return seq;
  }

  /** The encoded frame with this seq while it is unacked. */
  frameAt(seq: number): Uint8Array | undefined {
    return this.replay?.get(seq);
  }

  /** Cumulative ack; a seq beyond what was assigned is clamped. */
  ack(seq: number): void {
    const upTo = Math.min(seq, this.lastSeq);
    if (upTo <= this.ackedSeq) return;
    this.ackedSeq = upTo;
    if (this.replay !== undefined) {
      this.replay.ackThrough(upTo);
      if (this.replay.length === 0) this.replay = undefined;
    }
  }

  /** Seq of the answer to this request id, when it is remembered. */
  answerSeq(id: string): number | undefined {
    return this.answered?.get(id);
  }

  rememberAnswer(id: string, seq: number): void {
    this.answered ??= new Map();
    this.answered.delete(id);
    this.answered.set(id, seq);
    if (this.answered.size > MAX_ANSWERED_IDS) {
      // Map iterates in insertion order: the first key is the least recently answered.
      const oldest = this.answered.keys().next().value as string;
      this.answered.delete(oldest);
    }
  }

  isInflight(id: string): boolean {
    return this.inflight?.has(id) ?? false;
  }

  get inflightCount(): number {
    return this.inflight === undefined ? 0 : this.inflight.size;
  }

  startRequest(id: string): void {
    this.inflight ??= new Set();
    this.inflight.add(id);
  }

  finishRequest(id: string): void {
    if (this.inflight === undefined) return;
    this.inflight.delete(id);
    if (this.inflight.size === 0) this.inflight = undefined;
  }

  snapshot(): SessionSnapshot {
    return {
      v: 1,
      sessionId: this.id,
      resumeToken: this.resumeToken,
      imei: this.imei,
      nextSeq: this.nextSeq,
      firstSeq: this.ackedSeq + 1,
      frames: this.replay === undefined ? [] : this.replay.toArray(),
      answered: this.answered === undefined ? [] : [...this.answered],
      ...(this.operator === undefined ? {} : { operator: this.operator }),
      ...(this.via === undefined ? {} : { via: this.via }),
      ...(this.caps === undefined ? {} : { caps: this.caps }),
    };
  }

  /** Rebuilds a session from a snapshot; throws TypeError when the snapshot is malformed. */
  static fromSnapshot(s: SessionSnapshot): DeviceSession {
    if (
      s === null ||
      typeof s !== 'object' ||
      s.v !== 1 ||
      typeof s.sessionId !== 'string' ||
      typeof s.resumeToken !== 'string' ||
      typeof s.imei !== 'string' ||
      !Number.isSafeInteger(s.nextSeq) ||
      !Number.isSafeInteger(s.firstSeq) ||
      !Array.isArray(s.frames) ||
      !Array.isArray(s.answered) ||
      s.firstSeq < 1 ||
      s.firstSeq + s.frames.length !== s.nextSeq
    ) {
      throw new TypeError('malformed session snapshot');
    }
    const session = new DeviceSession(s.sessionId, s.imei, s.resumeToken);
    if (typeof s.operator === 'string') session.operator = s.operator;
    if (s.via === 'ws' || s.via === 'poll') session.via = s.via;
    if (s.caps !== null && typeof s.caps === 'object' && !Array.isArray(s.caps)) session.caps = s.caps;
    session.nextSeq = s.firstSeq;
    session.ackedSeq = s.firstSeq - 1;
    for (const frame of s.frames) {
      if (!(frame instanceof Uint8Array)) throw new TypeError('malformed session snapshot frame');
      session.append(frame);
    }
    for (const entry of s.answered) {
      if (Array.isArray(entry) && typeof entry[0] === 'string' && Number.isSafeInteger(entry[1])) {
        session.rememberAnswer(entry[0], entry[1]);
      }
    }
    return session;
  }
}

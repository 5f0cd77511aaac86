/**
 * The unacked sequenced frames of one session, as encoded bytes, in seq order.
 * Seqs are contiguous (every sequenced frame takes the next one), so the
 * buffer is `firstSeq` plus an array; acks trim from the front.
 *
 * The array is compacted lazily (a head index, spliced once half is dead) so
 * that a cumulative ack is O(trimmed), not O(buffer).
 */
export class ReplayBuffer {
  /** Seq of frames[head]. */
  private firstSeq: number;
  private frames: Uint8Array[] = [];
  private head = 0;
  private byteCount = 0;

  constructor(firstSeq: number) {
    this.firstSeq = firstSeq;
  }

  /** Number of frames held. */
  get length(): number {
    return this.frames.length - this.head;
  }

  /** Bytes held. */
  get bytes(): number {
    return this.byteCount;
  }

  /** Seq of the oldest frame held (or of the next one to be pushed when empty). */
  get oldestSeq(): number {
    return this.firstSeq;
  }

  /** Seq the next pushed frame must have. */
  get nextSeq(): number {
    return this.firstSeq + this.length;
  }

  push(seq: number, frame: Uint8Array): void {
    if (seq !== this.nextSeq) throw new RangeError(`replay buffer expects seq ${this.nextSeq}, got ${seq}`);
    this.frames.push(frame);
    this.byteCount += frame.length;
  }

  /** The frame with this seq, or undefined when it is acked or not assigned yet. */
  get(seq: number): Uint8Array | undefined {
    if (seq < this.firstSeq || seq >= this.nextSeq) return undefined;
    return this.frames[this.head + (seq - this.firstSeq)];
  }

  /** Drops every frame with seq ≤ `seq` (a cumulative ack). */
  ackThrough(seq: number): void {
    let n = Math.min(seq - this.firstSeq + 1, this.length);
    if (n <= 0) return;
    this.firstSeq += n;
    // n ≤ this.length, so every slot read here holds a live frame.
    while (n-- > 0) {
      this.byteCount -= this.frames[this.head]!.length;
      // Let the bytes go now, not at the next compaction.
      this.frames[this.head] = EMPTY;
      this.head++;
    }
    if (this.head === this.frames.length) {
      this.frames = [];
      this.head = 0;
    } else if (this.head > 32 && this.head * 2 > this.frames.length) {
      this.frames.splice(0, this.head);
      this.head = 0;
    }
  }

  /** The frames held, oldest first (a copy of the list, sharing the bytes). */
  toArray(): Uint8Array[] {
    return this.frames.slice(this.head);
  }
}

const EMPTY = new Uint8Array(0);

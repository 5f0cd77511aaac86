/**
 * Coalesced writes to carriers. Frames appended to sessions during one turn
 * of the event loop (a burst of events from the bus) leave together at the
 * end of it: one corked write per WebSocket, one answer per held long-poll
 * GET, instead of one syscall or one HTTP answer per frame.
 *
 * Two lists and two flags for the whole edge, and the runners are created
 * once: scheduling a carrier allocates nothing but an array slot.
 */
import type { Carrier, PollCarrier, WsCarrier } from './carriers.ts';

/** What the scheduler needs from the edge. */
export interface FlushHost {
  /** A WebSocket write failed by a bug: close that carrier, not the process. */
  internalError(c: Carrier, err: unknown): void;
}

export class FlushScheduler {
  private wsFlushes: WsCarrier[] = [];
  private wsScheduled = false;
  private pollFlushes: PollCarrier[] = [];
  private pollScheduled = false;

  constructor(private readonly host: FlushHost) {}

  /** Answer this carrier's held GET at the end of this turn (once, however often it is asked). */
  poll(c: PollCarrier): void {
    if (c.flushQueued) return;
    c.flushQueued = true;
    this.pollFlushes.push(c);
    if (!this.pollScheduled) {
      this.pollScheduled = true;
      setImmediate(this.runPoll);
    }
  }

  /** Write this WebSocket's new frames at the end of this turn; the carrier keeps its own queued flag. */
  ws(c: WsCarrier): void {
    this.wsFlushes.push(c);
    if (!this.wsScheduled) {
      this.wsScheduled = true;
      setImmediate(this.runWs);
    }
  }

  private readonly runWs = (): void => {
    this.wsScheduled = false;
    const list = this.wsFlushes;
    this.wsFlushes = [];
    for (const c of list) {
      try {
        c.flushLive();
      } catch (err) {
        this.host.internalError(c, err);
      }
    }
  };

  private readonly runPoll = (): void => {
    this.pollScheduled = false;
    const list = this.pollFlushes;
    this.pollFlushes = [];
    for (const c of list) c.flush(false);
  };
}

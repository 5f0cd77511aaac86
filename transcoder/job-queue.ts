/**
 * A bounded job queue: at most `maxConcurrent` jobs run, at most `maxQueued`
 * jobs (holding at most `maxQueuedBytes` of sources) wait, and anything past
 * that is refused at once with transcode.busy (retryable), so that a burst
 * of attachments turns into quick "retry later" answers rather than into an
 * ever longer queue and an ever larger heap. Another transcoder in the same
 * queue group, or this one a moment later, takes the retry.
 */
import { GatewayError } from '../device-protocol/errors.ts';

export interface JobQueueOptions {
  maxConcurrent: number;
  maxQueued: number;
  maxQueuedBytes: number;
  /** A job that waited longer than this is refused with transcode.busy instead of run. */
  maxQueueWaitMs: number;
  /** Monotonic milliseconds; default performance.now. */
  now?: () => number;
}

interface Waiting {
  weight: number;
  enqueuedAt: number;
  start(): void;
  refuse(err: GatewayError): void;
}

export interface JobQueueStats {
  running: number;
  queued: number;
  queuedBytes: number;
  /** Refused because the queue was full, since start. */
  refused: number;
  /** Refused because they waited too long, since start. */
  expired: number;
}

const RETRY_AFTER_MS = 500;

export class JobQueue {
  private running = 0;
  private queuedBytes = 0;
  private refused = 0;
  private expired = 0;
  private readonly waiting: Waiting[] = [];
  private readonly idleWaiters: Array<() => void> = [];
  private readonly now: () => number;

  constructor(private readonly options: JobQueueOptions) {
    this.now = options.now ?? (() => performance.now());
  }

  get stats(): JobQueueStats {
    return {
      running: this.running,
      queued: this.waiting.length,
      queuedBytes: this.queuedBytes,
      refused: this.refused,
      expired: this.expired,
    };
  }

  /** Runs `job` now or later; rejects with transcode.busy when there is no room. `weight` is the bytes it holds. */
  run<T>(weight: number, job: () => Promise<T>): Promise<T> {
    if (this.running < this.options.maxConcurrent && this.waiting.length === 0) return this.start(job);
    if (
      this.waiting.length >= this.options.maxQueued ||
      this.queuedBytes + weight > this.options.maxQueuedBytes
    ) {
      this.refused++;
      return Promise.reject(
        new GatewayError('transcode.busy', 'The transcoder queue is full; retry later.', {
          retryable: true,
          retryAfterMs: RETRY_AFTER_MS,
        }),
      );
    }
    return new Promise<T>((resolve, reject) => {
      this.queuedBytes += weight;
      this.waiting.push({
        weight,
        enqueuedAt: this.now(),
        start: () => this.start(job).then(resolve, reject),
        refuse: reject,
      });
    });
  }

  /** Resolves when nothing runs and nothing waits. */
  idle(): Promise<void> {
    if (this.running === 0 && this.waiting.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private start<T>(job: () => Promise<T>): Promise<T> {
    this.running++;
    let promise: Promise<T>;
    try {
      promise = job();
    } catch (err) {
      promise = Promise.reject(err);
    }
    return promise.finally(() => {
      this.running--;
      this.next();
    });
  }

  private next(): void {
    while (this.running < this.options.maxConcurrent && this.waiting.length > 0) {
      const w = this.waiting.shift()!;
      this.queuedBytes -= w.weight;
      if (this.now() - w.enqueuedAt > this.options.maxQueueWaitMs) {
        this.expired++;
        w.refuse(
          new GatewayError(
            'transcode.busy',
            'The job waited too long in the transcoder queue; retry later.',
            {
              retryable: true,
              retryAfterMs: RETRY_AFTER_MS,
            },
          ),
        );
        continue;
      }
      w.start();
    }
    if (this.running === 0 && this.waiting.length === 0) {
      for (const resolve of this.idleWaiters.splice(0)) resolve();
    }
  }
}

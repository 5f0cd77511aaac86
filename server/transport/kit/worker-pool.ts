/**
 * A small pool of worker threads for CPU-bound work on untrusted input (the
 * MIME structure of a hostile mail, issue #11): the event loop that serves
 * every device never runs it, so one device's mail cannot stall another's echo.
 *
 * One job per worker at a time, so a job's time and heap are its own: a job
 * that runs past `jobTimeoutMs` or its worker's heap limit ends that worker
 * (terminated; a new one starts for the next job) and fails with the reason.
 * Jobs beyond the workers wait in a bounded queue; past it they fail at once
 * (`busy`). Idle workers do not keep the process alive.
 *
 * Workers run at a lower CPU priority (nice 10, where the system lets a
 * thread set its own: Linux): on a busy machine the event loop, which every
 * device waits on, gets the cores first, and a hostile mail's parse waits.
 *
 * The worker module runs from dist/ (a .js file) and from the sources (a .ts
 * file, loaded through tsx the way the tests and benchmarks run the node):
 * the caller names it by the extension of its own module, as node.ts does
 * for the edge worker.
 */
import { readlinkSync } from 'node:fs';
import { availableParallelism, setPriority } from 'node:os';
import { parentPort, type Transferable, Worker, workerData } from 'node:worker_threads';

export type WorkerFailure = 'timeout' | 'memory' | 'crashed' | 'busy' | 'closed' | 'failed';

/** A job that did not give a result, and why. */
export class WorkerJobError extends Error {
  override readonly name = 'WorkerJobError';
  constructor(
    readonly reason: WorkerFailure,
    message: string,
  ) {
    super(message);
  }
}

export interface WorkerPoolOptions {
  /** The worker module (.js, or .ts under tsx); it calls serveJobs(). */
  entry: URL;
  /** Workers at most; default defaultPoolSize(). */
  size?: number;
  /** Jobs waiting for a worker at most; default 64. */
  maxQueue?: number;
  /** A job running longer ends its worker; default 10 s. */
  jobTimeoutMs?: number;
  /** Old-generation heap of each worker; default 128 MB. */
  maxHeapMb?: number;
  /** Nice value of the worker threads (0: as the event loop); default 10. */
  nice?: number;
}

/** Leaves a core to the event loop: the pool's point is that it never waits for a worker. */
export function defaultPoolSize(): number {
  return Math.max(1, Math.min(4, availableParallelism() - 1));
}

interface Pending {
  job: unknown;
  transfer: readonly Transferable[];
  resolve(result: unknown): void;
  reject(err: WorkerJobError): void;
}

interface Slot {
  worker: Worker;
  pending?: Pending;
  timer?: NodeJS.Timeout;
  /** Set once the worker is being ended: nothing more is given to it. */
  ending: boolean;
  /** The worker has started: a job's time runs from here, not from the thread's boot. */
  online: boolean;
}

interface Reply {
  ok: boolean;
  result?: unknown;
  error?: string;
}

export class WorkerPool<Job, Result> {
  readonly #opts: Required<WorkerPoolOptions>;
  readonly #slots = new Set<Slot>();
  readonly #queue: Pending[] = [];
  #closed = false;
  /** Failures by reason since the pool started (metrics, tests). */
  readonly failures: Record<WorkerFailure, number> = {
    timeout: 0,
    memory: 0,
    crashed: 0,
    busy: 0,
    closed: 0,
    failed: 0,
  };

  constructor(opts: WorkerPoolOptions) {
    this.#opts = {
      entry: opts.entry,
      size: opts.size ?? defaultPoolSize(),
      maxQueue: opts.maxQueue ?? 64,
      jobTimeoutMs: opts.jobTimeoutMs ?? 10_000,
      maxHeapMb: opts.maxHeapMb ?? 128,
      nice: opts.nice ?? 10,
    };
  }

  /** Workers running now (started lazily, kept while the pool lives). */
  get workers(): number {
    return this.#slots.size;
  }

  get queued(): number {
    return this.#queue.length;
  }

  /** Runs `job` on a worker; `transfer` moves those buffers instead of copying them. */
  run(job: Job, transfer: readonly Transferable[] = []): Promise<Result> {
    if (this.#closed) return Promise.reject(this.#fail('closed', 'the worker pool is closed'));
    return new Promise<Result>((resolve, reject) => {
      const pending: Pending = { job, transfer, resolve: resolve as (r: unknown) => void, reject };
      const slot = this.#idleSlot();
      if (slot) return this.#start(slot, pending);
      if (this.#queue.length >= this.#opts.maxQueue) {
        return reject(this.#fail('busy', `${this.#queue.length} jobs are already waiting for a worker`));
      }
      this.#queue.push(pending);
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const p of this.#queue.splice(0)) p.reject(this.#fail('closed', 'the worker pool closed'));
    await Promise.all([...this.#slots].map((slot) => this.#end(slot, 'closed', 'the worker pool closed')));
  }

  #idleSlot(): Slot | undefined {
    for (const slot of this.#slots) if (!slot.pending && !slot.ending) return slot;
    if (this.#slots.size >= this.#opts.size) return undefined;
    return this.#spawn();
  }

  #spawn(): Slot {
    const heap = this.#opts.maxHeapMb;
    const options = {
      resourceLimits: {
        maxOldGenerationSizeMb: heap,
        maxYoungGenerationSizeMb: Math.min(32, Math.ceil(heap / 4)),
      },
      workerData: { nice: this.#opts.nice },
    };
    const entry = this.#opts.entry;
    const worker = entry.pathname.endsWith('.ts')
      ? // The sources: a worker does not inherit the parent's tsx loader, so it registers its own first.
        new Worker(
          `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))})` +
            `.then(({ register }) => { register(); return import(${JSON.stringify(entry.href)}); });`,
          { ...options, eval: true },
        )
      : new Worker(entry, options);
    worker.unref();
    const slot: Slot = { worker, ending: false, online: false };
    this.#slots.add(slot);
    worker.once('online', () => {
      slot.online = true;
      if (slot.pending && !slot.timer) this.#arm(slot);
    });
    worker.on('message', (reply: Reply) => this.#done(slot, reply));
    worker.on('error', (err: Error & { code?: string }) => {
      const memory = err.code === 'ERR_WORKER_OUT_OF_MEMORY';
      void this.#end(slot, memory ? 'memory' : 'crashed', memory ? 'the job ran out of memory' : err.message);
    });
    worker.on('exit', () => {
      this.#slots.delete(slot);
      this.#settle(slot, 'crashed', 'the worker exited');
      this.#next();
    });
    return slot;
  }

  #start(slot: Slot, pending: Pending): void {
    slot.pending = pending;
    slot.worker.ref();
    if (slot.online) this.#arm(slot);
    try {
      slot.worker.postMessage(pending.job, pending.transfer);
    } catch (err) {
      // A job that cannot be cloned is the caller's fault; the worker is fine.
      this.#settle(slot, 'failed', (err as Error).message);
      this.#next();
    }
  }

  #arm(slot: Slot): void {
    slot.timer = setTimeout(
      () => void this.#end(slot, 'timeout', `the job ran longer than ${this.#opts.jobTimeoutMs} ms`),
      this.#opts.jobTimeoutMs,
    );
  }

  #done(slot: Slot, reply: Reply): void {
    const pending = slot.pending;
    if (!pending) return;
    this.#clear(slot);
    if (reply.ok) pending.resolve(reply.result);
    else pending.reject(this.#fail('failed', reply.error ?? 'the job failed'));
    this.#next();
  }

  #next(): void {
    while (this.#queue.length > 0) {
      const slot = this.#idleSlot();
      if (!slot) return;
      const pending = this.#queue.shift();
      if (pending) this.#start(slot, pending);
    }
  }

  /** Ends a worker (and fails its job with `reason`); the next job gets a new one. */
  async #end(slot: Slot, reason: WorkerFailure, message: string): Promise<void> {
    if (slot.ending) return;
    slot.ending = true;
    this.#settle(slot, reason, message);
    this.#slots.delete(slot);
    await slot.worker.terminate().catch(() => {});
    this.#next();
  }

  #settle(slot: Slot, reason: WorkerFailure, message: string): void {
    const pending = slot.pending;
    if (!pending) return;
    this.#clear(slot);
    pending.reject(this.#fail(reason, message));
  }

  #clear(slot: Slot): void {
    if (slot.timer) clearTimeout(slot.timer);
    slot.timer = undefined;
    slot.pending = undefined;
    if (!slot.ending) slot.worker.unref();
  }

  #fail(reason: WorkerFailure, message: string): WorkerJobError {
    this.failures[reason]++;
    return new WorkerJobError(reason, message);
  }
}

/**
 * In a worker module: answers each job the pool sends with `handle`'s result,
 * or with the message of what it threw. `transferOf` names the buffers of a
 * result to move rather than copy.
 */
export function serveJobs<Job, Result>(
  handle: (job: Job) => Result | Promise<Result>,
  transferOf: (result: Result) => Transferable[] = () => [],
): void {
  const port = parentPort;
  if (!port) throw new Error('serveJobs runs in a worker thread');
  lowerOwnPriority((workerData as { nice?: number } | null)?.nice ?? 0);
  port.on('message', async (job: Job) => {
    let reply: Reply;
    let transfer: Transferable[] = [];
    try {
      const result = await handle(job);
      reply = { ok: true, result };
      transfer = transferOf(result);
    } catch (err) {
      reply = { ok: false, error: err instanceof Error ? err.message : String(err) };
    }
    port.postMessage(reply, transfer);
  });
}

/**
 * Sets this thread's nice value. Linux keeps one per thread: setpriority() on
 * a thread id (from /proc/thread-self) changes that thread only. Elsewhere,
 * or where it is refused, the thread keeps the process's priority.
 */
function lowerOwnPriority(nice: number): void {
  if (nice <= 0) return;
  try {
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
    if (Number.isInteger(tid) && tid > 0) setPriority(tid, nice);
  } catch {}
}

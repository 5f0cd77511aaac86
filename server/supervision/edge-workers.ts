/**
 * Edge worker processes (config edge.workers > 1): the primary forks N
 * processes that each run the edge alone and share the device port, and
 * reach the primary's roles over the IPC bus; the primary sums their metrics
 * into its /metrics. The child side is runEdgeWorker (child.ts).
 */
import cluster, { type Worker } from 'node:cluster';
import type { Logger } from 'pino';
import type { Counter } from 'prom-client';
import { GatewayError } from '../../device-protocol/errors.ts';
import type { Bus } from '../bus/bus.ts';
import { type InProcessBus, serveIpcBus } from '../bus/index.ts';
import type { Config } from '../config.ts';
import { reusePortEnv } from '../edge/index.ts';
import { childEntry, childExecArgv, MetricsAsks, sendTagged, tagged } from './child-entry.ts';
import { type BackoffOptions, RestartStreak } from './supervisor.ts';

/** How long a worker may take to start, or to drain before it is killed. */
const WORKER_START_TIMEOUT_MS = 60_000;
const DRAIN_TIMEOUT_MS = 30_000;

export type EdgeWorkerMessage =
  | { type: 'hello' }
  | { type: 'init'; config: Config; nodeId: string; port: number }
  | { type: 'ready'; port: number }
  | { type: 'metrics'; id: number; data?: object[] }
  | { type: 'drain' }
  | { type: 'reload-tls' };

interface WorkerSlot {
  index: number;
  worker?: Worker;
  ready: boolean;
  stopServing?: () => void;
  streak: RestartStreak;
}

export interface EdgeWorkersOptions {
  /** Counts restarts of a worker that exited unasked, as role "edge-worker". */
  restarts?: Counter<'role'>;
  backoff?: BackoffOptions;
}

/**
 * Forks and watches the edge workers. Worker 0 binds the configured port
 * first (possibly 0 = any) and the others then bind the port it got: uWS
 * listens with SO_REUSEPORT and the portable engine's node:http server shares
 * its listening socket through the cluster module, so every worker accepts on
 * the same port. A worker that dies is forked again (the sockets it held are
 * lost; their devices resume on another worker), after the supervisor's
 * backoff: 0.2 s doubling to 10 s for a worker that keeps dying, back to
 * 0.2 s once one stayed up a minute.
 */
export class EdgeWorkers {
  private readonly slots: WorkerSlot[];
  private port = 0;
  private stopping = false;
  private readonly metricsAsks = new MetricsAsks();
  private readonly undelivered = (err: unknown) =>
    this.logger.debug({ err }, 'message to edge worker not delivered');

  constructor(
    private readonly config: Config,
    private readonly nodeId: string,
    private readonly bus: Bus,
    private readonly logger: Logger,
    private readonly options: EdgeWorkersOptions = {},
  ) {
    this.slots = Array.from({ length: config.edge.workers }, (_, index) => ({
      index,
      ready: false,
      streak: new RestartStreak(options.backoff),
    }));
  }

  async start(): Promise<number> {
    const [first, ...others] = this.slots;
    if (first === undefined) throw new GatewayError('internal', 'no edge worker to start');
    this.port = await this.fork(first, this.config.port);
    await Promise.all(others.map((slot) => this.fork(slot, this.sharedPort())));
    this.logger.info({ workers: this.slots.length, port: this.port }, 'edge workers started');
    return this.port;
  }

  /**
   * The port a worker binds. uWS: the port worker 0 got (SO_REUSEPORT joins it).
   * Portable: the configured one, even 0, because the cluster module shares one
   * listening handle per (address, port) asked for, and with 0 hands every
   * worker the same ephemeral port.
   */
  private sharedPort(): number {
    return this.config.engine === 'portable' ? this.config.port : this.port;
  }

  notReady(): string[] {
    return this.slots.filter((s) => !s.ready).map((s) => `edge worker ${s.index}: not ready`);
  }

  /** Every ready worker's metrics (prom-client JSON, one array per worker; series keep their node label). */
  async metrics(): Promise<object[][]> {
    const ready = this.slots.filter((s) => s.worker && s.ready);
    return Promise.all(ready.map((s) => this.metricsAsks.ask(s.worker!, this.undelivered)));
  }

  /** SIGHUP reached the primary: each worker reads the certificate files again (it serves its own TLS). */
  reloadTls(): void {
    for (const s of this.slots) if (s.worker) this.send(s.worker, { type: 'reload-tls' });
  }

  async drain(): Promise<void> {
    for (const s of this.slots) if (s.worker) this.send(s.worker, { type: 'drain' });
  }

  /** The worker may be gone already (its channel closes before 'exit'): never throw for that. */
  private send(worker: Worker, message: EdgeWorkerMessage): void {
    sendTagged(worker, message, this.undelivered);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await this.drain();
    await Promise.all(
      this.slots.map(
        (s) =>
          new Promise<void>((resolve) => {
            const w = s.worker;
            if (!w || w.isDead()) return resolve();
            const timer = setTimeout(() => w.kill('SIGKILL'), DRAIN_TIMEOUT_MS);
            w.once('exit', () => {
              clearTimeout(timer);
              resolve();
            });
          }),
      ),
    );
    for (const s of this.slots) s.stopServing?.();
  }

  private async fork(slot: WorkerSlot, port: number): Promise<number> {
    cluster.setupPrimary({
      exec: childEntry('edge-worker'),
      execArgv: childExecArgv(),
      args: ['--internal-edge-worker', String(slot.index)],
      serialization: 'advanced',
    });
    // uWS needs SO_REUSEPORT (a preload shim, see server/edge/reuse-port.ts); the portable
    // engine's node:http shares the listening handle through the cluster module instead.
    // Port 0: the first worker may bind any port ('*'), the others then share the one it got.
    const env = this.config.engine === 'uws' ? await reusePortEnv(port === 0 ? '*' : port) : {};
    const worker = cluster.fork(env);
    worker.on('error', (err) => this.logger.debug({ err, worker: slot.index }, 'edge worker channel error'));
    slot.worker = worker;
    slot.ready = false;
    slot.stopServing = serveIpcBus(this.bus as InProcessBus, worker, { logger: this.logger });
    return new Promise<number>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new GatewayError('internal', `edge worker ${slot.index} did not start in time`)),
        WORKER_START_TIMEOUT_MS,
      );
      worker.on('message', (message: unknown) => {
        const m = tagged<EdgeWorkerMessage>(message);
        // The worker says hello once it listens: a message sent before that would be lost.
        if (m?.type === 'hello') {
          this.send(worker, {
            type: 'init',
            config: this.config,
            nodeId: `${this.nodeId}-w${slot.index}`,
            port,
          });
        } else if (m?.type === 'ready') {
          clearTimeout(timer);
          slot.ready = true;
          slot.streak.up();
          resolve(m.port);
        } else if (m?.type === 'metrics' && m.data) {
          this.metricsAsks.answer(m.id, m.data);
        }
      });
      worker.on('exit', (code, signal) => {
        clearTimeout(timer);
        slot.ready = false;
        slot.stopServing?.();
        if (this.stopping) return;
        reject(
          new GatewayError('internal', `edge worker ${slot.index} exited (${signal ?? code}) while starting`),
        );
        const delayMs = slot.streak.next();
        this.logger.error(
          { worker: slot.index, code, signal, delayMs, restarts: slot.streak.restarts },
          `edge worker died; forking it again in ${delayMs} ms`,
        );
        setTimeout(() => {
          if (this.stopping) return;
          this.options.restarts?.inc({ role: 'edge-worker' });
          this.fork(slot, this.sharedPort()).catch((err) =>
            this.logger.error({ err }, 'edge worker restart failed'),
          );
        }, delayMs).unref();
      });
    });
  }
}

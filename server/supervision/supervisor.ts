/**
 * Supervision of the roles that talk to the outside (transport, transcoder):
 * each runs in a child process of its own (role-worker.ts) on the primary's
 * bus (the IPC bus to the in-process broker, or NATS), so that a crash there
 * (a library that throws from a socket callback, memory blown by a hostile
 * input) ends that process only. The primary keeps the edge with every
 * device session; the supervisor forks the role again, as an Erlang
 * supervisor restarts a child:
 *
 *   - backoff between restarts: 0.2 s, doubling up to 10 s; back to 0.2 s
 *     once a child has stayed up for a minute (a crash loop slows down, a
 *     rare crash comes back at once);
 *   - the new child is forked only after the old one has exited, so that one
 *     process at a time holds the role's lmdb environment;
 *   - while the child is down the role is out of the node's heartbeat and
 *     /readyz says "<role>: restarting"; devices asking meanwhile get the
 *     retryable request.unavailable the edge answers when no transport is known;
 *   - every restart is logged and counted (mmgw_role_restarts_total{role}).
 *
 * The child ignores SIGINT and SIGTERM (a terminal's Ctrl-C and systemd's
 * stop reach the whole process group): the primary stops it after its own
 * drain, and a child whose primary is gone stops by itself.
 */
import { type ChildProcess, fork } from 'node:child_process';
import type { Logger } from 'pino';
import { Counter } from 'prom-client';
import { GatewayError, isErrorCode } from '../../device-protocol/errors.ts';
import type { ServedCounts } from '../bus/bus.ts';
import { InProcessBus, serveIpcBus } from '../bus/index.ts';
import type { Config } from '../config.ts';
import type { RoleContext, RoleDefinition, RoleHandle } from '../roles.ts';
import {
  childEntry,
  childExecArgv,
  MetricsAsks,
  type SupervisedRole,
  sendTagged,
  tagged,
} from './child-entry.ts';

export { SUPERVISED_ROLES, type SupervisedRole } from './child-entry.ts';

export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
  /** A child up this long resets the delay to initialMs. */
  resetAfterMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 200, maxMs: 10_000, resetAfterMs: 60_000 };

/** The delay before the next restart, given how many restarts in a row came before it. */
export function restartDelay(consecutive: number, o: BackoffOptions = DEFAULT_BACKOFF): number {
  return Math.min(o.maxMs, o.initialMs * 2 ** Math.min(consecutive, 30));
}

/**
 * One child's restarts in a row (the backoff's exponent), of a role process
 * or an edge worker: a child that stayed up `resetAfterMs` starts the count
 * again.
 */
export class RestartStreak {
  #restarts = 0;
  /** When the current child became ready; undefined while it starts. */
  #upSince: number | undefined;

  constructor(private readonly backoff: BackoffOptions = DEFAULT_BACKOFF) {}

  /** Restarts in a row so far. */
  get restarts(): number {
    return this.#restarts;
  }

  /** The child is ready. */
  up(): void {
    this.#upSince = Date.now();
  }

  /** The child exited unasked: the delay before it is forked again, counted as a restart. */
  next(): number {
    if (this.#upSince !== undefined && Date.now() - this.#upSince >= this.backoff.resetAfterMs) {
      this.#restarts = 0;
    }
    this.#upSince = undefined;
    return restartDelay(this.#restarts++, this.backoff);
  }
}

/** How long a child may take to start, and to stop before it is killed. */
const START_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 30_000;

export type RoleWorkerMessage =
  | { type: 'hello' }
  | { type: 'init'; config: Config; nodeId: string; role: SupervisedRole; registryLocal: boolean }
  | { type: 'ready' }
  | { type: 'failed'; code: string; message: string }
  | { type: 'metrics'; id: number; data?: object[] }
  | { type: 'stop' }
  | { type: 'served'; served: ServedCounts };

export interface RoleSupervisorOptions {
  role: SupervisedRole;
  ctx: RoleContext;
  restarts: Counter<'role'>;
  backoff?: BackoffOptions;
  /** For tests: the module and arguments to fork instead of role-worker. */
  entry?: { module: string; args?: string[]; execArgv?: string[] };
}

type State = 'starting' | 'up' | 'restarting' | 'stopped';

/** One supervised role: its current child process and the restarts. */
export class RoleSupervisor {
  private child: ChildProcess | undefined;
  private state: State = 'starting';
  private readonly streak: RestartStreak;
  private restartTimer: NodeJS.Timeout | undefined;
  private readonly metricsAsks = new MetricsAsks();
  /** What the child last said it serves (transport), for the node's heartbeat. */
  private lastServed: ServedCounts | undefined;
  private readonly logger: Logger;

  constructor(private readonly o: RoleSupervisorOptions) {
    this.logger = o.ctx.logger.child({ role: o.role });
    this.streak = new RestartStreak(o.backoff);
  }

  /** The pid of the running child (also while it starts). */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  get up(): boolean {
    return this.state === 'up';
  }

  readiness(): string[] {
    if (this.state === 'up' || this.state === 'stopped') return [];
    return [`${this.o.role}: ${this.state === 'starting' ? 'not started' : 'restarting'}`];
  }

  /** Forks the first child; resolves once it is ready, rejects with its error if it fails to start. */
  start(): Promise<void> {
    return this.fork();
  }

  private fork(): Promise<void> {
    const { role, ctx } = this.o;
    const entry = this.o.entry ?? { module: childEntry('role-worker'), args: ['--internal-role', role] };
    const child = fork(entry.module, entry.args ?? [], {
      execArgv: entry.execArgv ?? childExecArgv(),
      serialization: 'advanced',
      stdio: 'inherit',
    });
    this.child = child;
    const stopServing =
      ctx.config.bus === 'inproc' && ctx.bus instanceof InProcessBus
        ? serveIpcBus(ctx.bus, child, { logger: this.logger })
        : undefined;
    let failure: GatewayError | undefined;
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        failure = new GatewayError('internal', `the ${role} process did not start in time`);
        child.kill('SIGKILL');
      }, START_TIMEOUT_MS);
      child.on('error', (err) => this.logger.debug({ err }, 'role process channel error'));
      child.on('message', (message: unknown) => {
        const m = tagged<RoleWorkerMessage>(message);
        if (m?.type === 'hello') {
          sendTagged(child, {
            type: 'init',
            config: ctx.config,
            nodeId: ctx.nodeId,
            role,
            registryLocal: ctx.registry !== undefined,
          } satisfies RoleWorkerMessage);
        } else if (m?.type === 'ready') {
          clearTimeout(timer);
          if (this.state === 'stopped') return;
          this.state = 'up';
          this.streak.up();
          this.logger.info({ childPid: child.pid, restarts: this.streak.restarts }, 'role process ready');
          ctx.announce();
          resolve();
        } else if (m?.type === 'failed') {
          failure = new GatewayError(isErrorCode(m.code) ? m.code : 'internal', m.message);
        } else if (m?.type === 'metrics' && m.data) {
          this.metricsAsks.answer(m.id, m.data);
        } else if (m?.type === 'served' && this.child === child) {
          this.lastServed = m.served;
        }
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        stopServing?.();
        this.metricsAsks.dropAll();
        if (this.child === child) {
          this.child = undefined;
          this.lastServed = undefined;
        }
        const wasUp = this.state === 'up';
        if (this.state === 'stopped') return;
        if (this.state === 'starting') {
          // The first start: the node's start fails with the child's own error.
          this.state = 'stopped';
          reject(
            failure ??
              new GatewayError('internal', `the ${role} process exited (${signal ?? code}) while starting`),
          );
          return;
        }
        const delayMs = this.streak.next();
        this.state = 'restarting';
        if (wasUp) ctx.announce();
        this.logger.error(
          { childPid: child.pid, code, signal, delayMs, ...(failure ? { err: failure } : {}) },
          `${role} process exited; restarting it in ${delayMs} ms`,
        );
        this.restartTimer = setTimeout(() => {
          this.restartTimer = undefined;
          if (this.state !== 'restarting') return;
          this.o.restarts.inc({ role });
          this.fork().catch(() => {});
        }, delayMs);
      });
    }).catch((err) => {
      // A restart that fails before it is ready is handled by its 'exit' (another restart);
      // only the first start reports its failure.
      if (this.state === 'stopped') throw err;
    });
  }

  /** What the child serves (none while it is down). */
  served(): ServedCounts | undefined {
    return this.state === 'up' ? this.lastServed : undefined;
  }

  /** The child's metrics, as prom-client JSON (none while it is down). */
  async metrics(): Promise<object[][]> {
    const child = this.child;
    if (!child || this.state !== 'up') return [];
    return [await this.metricsAsks.ask(child)];
  }

  /**
   * Stops the child and restarts no more. A ready child closes its role (its last records and
   * pushes still go out on the bus); one still starting holds nothing yet and is killed.
   */
  async stop(): Promise<void> {
    const wasUp = this.state === 'up';
    this.state = 'stopped';
    clearTimeout(this.restartTimer);
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
      child.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      if (wasUp) sendTagged(child, { type: 'stop' } satisfies RoleWorkerMessage);
      else child.kill('SIGKILL');
    });
  }
}

/** The role table entry of a supervised role: the role runs in a child process, restarted when it dies. */
export function supervisedRole(role: SupervisedRole, backoff?: BackoffOptions): RoleDefinition {
  return {
    name: role,
    async start(ctx): Promise<RoleHandle> {
      const restarts = roleRestartsCounter(ctx);
      const supervisor = new RoleSupervisor({ role, ctx, restarts, ...(backoff ? { backoff } : {}) });
      await supervisor.start();
      return {
        readiness: () => supervisor.readiness(),
        advertised: () => supervisor.up,
        metrics: () => supervisor.metrics(),
        servedCount: () => supervisor.served(),
        stop: () => supervisor.stop(),
      };
    },
  };
}

/** mmgw_role_restarts_total{role}: one counter per node registry, shared by its supervisors. */
/** The node's restart counter, shared by the supervised roles and the edge workers. */
export function roleRestartsCounter(ctx: RoleContext): Counter<'role'> {
  const existing = ctx.metrics.getSingleMetric('mmgw_role_restarts_total');
  if (existing) return existing as Counter<'role'>;
  const counter = new Counter({
    name: 'mmgw_role_restarts_total',
    help: 'Restarts of a supervised role process (transport, transcoder) or an edge worker after it exited unasked.',
    labelNames: ['role'],
    registers: [ctx.metrics],
  });
  return counter;
}

/**
 * What the primary forks, and the few messages it exchanges with its child
 * processes (edge workers and supervised roles) on their IPC channel, beside
 * the IPC bus (server/bus/ipc.ts) that uses its own key on the same channel.
 */
import { fileURLToPath } from 'node:url';

/** Running the build (dist/server/…/*.js) rather than the sources under tsx? */
export const BUILT = import.meta.url.endsWith('.js');

/**
 * The entry module of a child: the build's when this is the build; else the
 * source one, under tsx like this process (tests and benchmarks start nodes
 * from the sources).
 */
export function childEntry(name: 'edge-worker' | 'role-worker'): string {
  return fileURLToPath(new URL(`../${name}.${BUILT ? 'js' : 'ts'}`, import.meta.url));
}

export function childExecArgv(): string[] {
  if (BUILT || process.execArgv.some((a) => a.includes('tsx'))) return process.execArgv;
  return [...process.execArgv, '--import', import.meta.resolve('tsx')];
}

/** The roles that run in a child process of their own when the node is supervised. */
export const SUPERVISED_ROLES = ['transport', 'transcoder'] as const;
export type SupervisedRole = (typeof SUPERVISED_ROLES)[number];

/** The key of the primary's own messages to its children (the IPC bus has its own). */
export const CHILD_TAG = '$mmgwWorker';

export function tagged<M>(message: unknown): M | undefined {
  return message !== null && typeof message === 'object' && CHILD_TAG in message
    ? ((message as Record<string, unknown>)[CHILD_TAG] as M)
    : undefined;
}

/** Something with an IPC channel: a forked ChildProcess, a cluster Worker, or this process towards its parent. */
export interface ChildChannel {
  send?(message: unknown, ...rest: any[]): boolean;
  connected?: boolean;
}

/** Sends a tagged message; never throws for a channel that is gone (its 'exit' tells). */
export function sendTagged(channel: ChildChannel, message: unknown, onError?: (err: unknown) => void): void {
  if (channel.connected === false || typeof channel.send !== 'function') return;
  try {
    channel.send({ [CHILD_TAG]: message }, undefined, {}, (err: Error | null) => {
      if (err) onError?.(err);
    });
  } catch (err) {
    onError?.(err);
  }
}

/** How long the primary waits for a child's metrics before it renders /metrics without them. */
const METRICS_ASK_TIMEOUT_MS = 2000;

/** The primary's asks for its children's metrics (prom-client JSON), answered by id. */
export class MetricsAsks {
  private nextId = 0;
  private readonly pending = new Map<number, (data: object[]) => void>();

  ask(channel: ChildChannel, onError?: (err: unknown) => void): Promise<object[]> {
    return new Promise((resolve) => {
      const id = ++this.nextId;
      const timer = setTimeout(() => {
        this.pending.delete(id);
        resolve([]);
      }, METRICS_ASK_TIMEOUT_MS);
      this.pending.set(id, (data) => {
        clearTimeout(timer);
        resolve(data);
      });
      sendTagged(channel, { type: 'metrics', id }, onError);
    });
  }

  answer(id: number, data: object[]): void {
    this.pending.get(id)?.(data);
    this.pending.delete(id);
  }

  /** The child is gone: its pending asks are answered with nothing at once. */
  dropAll(): void {
    for (const answer of this.pending.values()) answer([]);
    this.pending.clear();
  }
}

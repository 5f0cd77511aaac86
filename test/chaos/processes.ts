/**
 * The chaos suite's own child processes (nats-servers, handset fleets): every
 * one is remembered by pid and killed when the suite's process exits, also
 * after a crash. A process stopped by SIGSTOP gets SIGCONT before any other
 * signal, so that a SIGTERM is acted on and nothing stays frozen behind us.
 */
import { type ChildProcess, type SpawnOptions, spawn } from 'node:child_process';
import { waitExit } from '../harness/nats.ts';

export { waitExit };

/** Sends a signal by pid; false when the process is already gone. */
export function signal(pid: number | undefined, sig: NodeJS.Signals): boolean {
  if (pid === undefined) return false;
  try {
    process.kill(pid, sig);
    return true;
  } catch {
    return false;
  }
}

export class ProcessSet {
  readonly #live = new Map<ChildProcess, string>();
  /** Pids of processes of any origin that are stopped by SIGSTOP now. */
  readonly #stopped = new Set<number>();

  constructor() {
    process.on('exit', () => {
      for (const pid of this.#stopped) signal(pid, 'SIGCONT');
      for (const child of this.#live.keys()) signal(child.pid, 'SIGKILL');
    });
  }

  spawn(name: string, command: string, args: string[], options: SpawnOptions): ChildProcess {
    const child = spawn(command, args, options);
    this.#live.set(child, name);
    child.once('exit', () => this.#live.delete(child));
    child.stderr?.resume();
    child.stdout?.resume();
    return child;
  }

  /** Tracks a child started elsewhere (the harness's gateways), for the exit hook. */
  adopt(name: string, child: ChildProcess): void {
    if (child.exitCode !== null || child.signalCode !== null) return;
    this.#live.set(child, name);
    child.once('exit', () => this.#live.delete(child));
  }

  freeze(pid: number | undefined): void {
    if (pid !== undefined && signal(pid, 'SIGSTOP')) this.#stopped.add(pid);
  }

  thaw(pid: number | undefined): void {
    if (pid === undefined) return;
    this.#stopped.delete(pid);
    signal(pid, 'SIGCONT');
  }

  /** Sends `sig` (SIGCONT first if frozen) and waits for the exit; SIGKILL after 30 s. */
  async kill(child: ChildProcess, sig: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    if (child.exitCode !== null || child.signalCode !== null) return;
    if (child.pid !== undefined && this.#stopped.has(child.pid)) this.thaw(child.pid);
    signal(child.pid, sig);
    if (!(await waitExit(child, 30_000))) {
      signal(child.pid, 'SIGKILL');
      await waitExit(child, 10_000);
    }
  }

  async stopAll(): Promise<void> {
    for (const pid of [...this.#stopped]) this.thaw(pid);
    await Promise.all([...this.#live.keys()].map((c) => this.kill(c, 'SIGTERM')));
  }
}

/**
 * The load generator as a whole: several load-client processes, each with its
 * own 127.x.y.z source address and its own slice of the devices, driven in
 * lock step (every phase starts on all of them at once and ends when the
 * slowest is done).
 */
import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { ClientCommand, ClientReply, ClientStats, PhaseResult } from './protocol.ts';

const CLIENT = fileURLToPath(new URL('./load-client.ts', import.meta.url));

type Distribute<T> = T extends { id: number } ? Omit<T, 'id'> : never;
type Command = Distribute<ClientCommand>;

export interface FleetOptions {
  processes: number;
  /** Source address of process i. */
  sourceAddress: (i: number) => string;
  host: string;
  port: number;
  devices: [string, string][];
  concurrency: number;
  ackEvery: number;
  ackDelayMs: number;
  connectTimeoutMs: number;
  /** Bound on every command; a stuck child fails the phase instead of hanging the run. */
  commandTimeoutMs: number;
}

class LoadProcess {
  private nextId = 1;
  private readonly waiting = new Map<number, (r: ClientReply) => void>();
  exited = false;

  constructor(
    readonly child: ChildProcess,
    readonly deviceCount: number,
    private readonly timeoutMs: number,
  ) {
    child.on('message', (r: ClientReply) => {
      const done = this.waiting.get(r.id);
      this.waiting.delete(r.id);
      done?.(r);
    });
    child.on('exit', () => {
      this.exited = true;
    });
  }

  ask(cmd: Command, timeoutMs = this.timeoutMs): Promise<ClientReply> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      if (this.exited) return reject(new Error(`load process ${this.child.pid} has exited`));
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(`load process ${this.child.pid}: ${cmd.cmd} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(id, (r) => {
        clearTimeout(timer);
        resolve(r);
      });
      this.child.send({ ...cmd, id } as ClientCommand);
    });
  }
}

export interface MergedPhase extends PhaseResult {
  /** Wall time of the phase across all processes. */
  wallMs: number;
}

export function mergeStats(all: ClientStats[]): ClientStats {
  const out: ClientStats = {
    open: 0,
    eventsReceived: 0,
    eventsAcked: 0,
    gaps: 0,
    duplicates: 0,
    pingsSent: 0,
    pongs: 0,
    closedByServer: {},
    rssBytes: 0,
  };
  for (const s of all) {
    out.open += s.open;
    out.eventsReceived += s.eventsReceived;
    out.eventsAcked += s.eventsAcked;
    out.gaps += s.gaps;
    out.duplicates += s.duplicates;
    out.pingsSent += s.pingsSent;
    out.pongs += s.pongs;
    out.rssBytes += s.rssBytes;
    for (const [k, v] of Object.entries(s.closedByServer))
      out.closedByServer[k] = (out.closedByServer[k] ?? 0) + v;
  }
  return out;
}

function mergePhases(all: PhaseResult[], wallMs: number): MergedPhase {
  const out: MergedPhase = {
    ok: 0,
    resumed: 0,
    failed: 0,
    notStarted: 0,
    errors: {},
    retried: {},
    ms: 0,
    p50Ms: 0,
    p99Ms: 0,
    wallMs,
  };
  for (const p of all) {
    out.ok += p.ok;
    out.notStarted += p.notStarted;
    out.resumed += p.resumed;
    out.failed += p.failed;
    out.ms = Math.max(out.ms, p.ms);
    // Percentiles of the slices are not the percentile of the whole; the worst slice is the honest bound.
    out.p50Ms = Math.max(out.p50Ms, p.p50Ms);
    out.p99Ms = Math.max(out.p99Ms, p.p99Ms);
    for (const [k, v] of Object.entries(p.errors)) out.errors[k] = (out.errors[k] ?? 0) + v;
    for (const [k, v] of Object.entries(p.retried)) out.retried[k] = (out.retried[k] ?? 0) + v;
  }
  return out;
}

export class LoadFleet {
  private constructor(
    private readonly procs: LoadProcess[],
    /** Offset of each process's first device in the fleet's device list. */
    readonly offsets: number[],
  ) {}

  get pids(): number[] {
    return this.procs.map((p) => p.child.pid ?? 0);
  }

  static async start(o: FleetOptions): Promise<LoadFleet> {
    const procs: LoadProcess[] = [];
    const offsets: number[] = [];
    const per = Math.ceil(o.devices.length / o.processes);
    for (let i = 0; i < o.processes; i++) {
      const slice = o.devices.slice(i * per, (i + 1) * per);
      const child = fork(CLIENT, [], {
        execArgv: ['--import', 'tsx', '--max-old-space-size=2048'],
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      });
      offsets.push(i * per);
      procs.push(new LoadProcess(child, slice.length, o.commandTimeoutMs));
    }
    const fleet = new LoadFleet(procs, offsets);
    await Promise.all(
      procs.map((p, i) =>
        p.ask(
          {
            cmd: 'init',
            target: { host: o.host, port: o.port, path: '/v1/ws', localAddress: o.sourceAddress(i) },
            devices: o.devices.slice(i * per, (i + 1) * per),
            concurrency: o.concurrency,
            ackEvery: o.ackEvery,
            ackDelayMs: o.ackDelayMs,
            connectTimeoutMs: o.connectTimeoutMs,
          },
          60_000,
        ),
      ),
    );
    return fleet;
  }

  /** Stops starting handshakes in the phase in progress (the phase then ends when those in flight settle). */
  async abort(): Promise<void> {
    await Promise.allSettled(this.procs.map((p) => p.ask({ cmd: 'abort' })));
  }

  /** Aborts the phase in progress at `stopAt` (epoch ms) if it is still running then. */
  private bound<T>(work: Promise<T>, stopAt: number): Promise<T> {
    const timer = setTimeout(() => void this.abort(), Math.max(0, stopAt - Date.now()));
    return work.finally(() => clearTimeout(timer));
  }

  /**
   * Opens sessions so that devices [fromFraction, toFraction) of each process
   * are connected; at `stopAt` no further handshakes start.
   */
  async connect(fromFraction: number, toFraction: number, stopAt: number): Promise<MergedPhase> {
    const t0 = Date.now();
    const timeoutMs = Math.max(0, stopAt - Date.now()) + 120_000;
    const replies = await this.bound(
      Promise.all(
        this.procs.map((p) =>
          p.ask(
            {
              cmd: 'connect',
              from: Math.round(p.deviceCount * fromFraction),
              to: Math.round(p.deviceCount * toFraction),
            },
            timeoutMs,
          ),
        ),
      ),
      stopAt,
    );
    return mergePhases(
      replies.map((r) => (r as { phase: PhaseResult }).phase),
      Date.now() - t0,
    );
  }

  /** Reconnects every dropped session with Resume; at `stopAt` no further handshakes start. */
  async resume(stopAt: number): Promise<MergedPhase> {
    const t0 = Date.now();
    const timeoutMs = Math.max(0, stopAt - Date.now()) + 120_000;
    const replies = await this.bound(
      Promise.all(this.procs.map((p) => p.ask({ cmd: 'resume' }, timeoutMs))),
      stopAt,
    );
    return mergePhases(
      replies.map((r) => (r as { phase: PhaseResult }).phase),
      Date.now() - t0,
    );
  }

  /** RSTs up to `max` sessions, spread evenly over the load processes. */
  async drop(max: number): Promise<number> {
    const per = Math.ceil(max / this.procs.length);
    const replies = await Promise.all(this.procs.map((p) => p.ask({ cmd: 'drop', max: per })));
    return replies.reduce((n, r) => n + (r as { dropped: number }).dropped, 0);
  }

  async stats(): Promise<ClientStats> {
    const replies = await Promise.all(this.procs.map((p) => p.ask({ cmd: 'stats' })));
    return mergeStats(replies.map((r) => (r as { stats: ClientStats }).stats));
  }

  async flushAcks(): Promise<ClientStats> {
    const replies = await Promise.all(this.procs.map((p) => p.ask({ cmd: 'flush-acks' })));
    return mergeStats(replies.map((r) => (r as { stats: ClientStats }).stats));
  }

  /** lastSeq of every device and whether it holds an open session, in fleet device order. */
  async deviceStates(): Promise<{ seqs: number[]; open: number[] }> {
    const replies = (await Promise.all(this.procs.map((p) => p.ask({ cmd: 'device-states' })))) as Array<{
      seqs: number[];
      open: number[];
    }>;
    return { seqs: replies.flatMap((r) => r.seqs), open: replies.flatMap((r) => r.open) };
  }

  /** Indexes (in fleet device order) of the devices holding an open session. */
  async connectedDevices(): Promise<number[]> {
    const { open } = await this.deviceStates();
    const out: number[] = [];
    for (let i = 0; i < open.length; i++) if (open[i] === 1) out.push(i);
    return out;
  }

  async close(): Promise<void> {
    await Promise.allSettled(this.procs.map((p) => p.ask({ cmd: 'close' }, 10_000)));
    await Promise.all(
      this.procs.map(
        (p) =>
          new Promise<void>((resolve) => {
            if (p.exited) return resolve();
            const timer = setTimeout(() => {
              p.child.kill('SIGKILL');
              resolve();
            }, 5000);
            p.child.once('exit', () => {
              clearTimeout(timer);
              resolve();
            });
          }),
      ),
    );
  }
}

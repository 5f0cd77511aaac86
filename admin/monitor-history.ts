/**
 * The last hour of the system monitor, kept by each admin node in memory: a
 * sample every 15 s in a ring buffer of 240. Each sample holds what the
 * monitor page already shows, summed over the live nodes (sessions, devices
 * connected, from the heartbeats), and the device log records this admin
 * node heard stored in the interval (every admin node hears every batch):
 * events per second, and the errors among them (backend errors and errors
 * answered to devices; refused logins apart, as the records keep them,
 * sampled under a flood). A restarted admin node starts an empty hour.
 */
import type { NodeView } from './monitor.ts';

const HISTORY_INTERVAL_MS = 15_000;
const HISTORY_KEEP_MS = 60 * 60_000;

export interface HistorySample {
  /** Epoch ms at the end of the interval. */
  at: number;
  sessions: number;
  connected: number;
  /** Device log records stored per second over the interval. */
  eventsPerSecond: number;
  /** backend_error and error records in the interval. */
  errors: number;
  /** auth_failure records in the interval. */
  authFailures: number;
}

const ERROR_KINDS: ReadonlySet<string> = new Set(['backend_error', 'error']);

export class MonitorHistory {
  readonly intervalMs: number;
  private readonly ring: (HistorySample | undefined)[];
  private next = 0;
  private events = 0;
  private errors = 0;
  private authFailures = 0;
  private since: number;
  private readonly now: () => number;
  private readonly timer: NodeJS.Timeout | undefined;

  /** `timer: false`: no sampling timer, the caller calls sample() (tests). */
  constructor(
    private readonly nodes: () => readonly NodeView[],
    options: { now?: () => number; intervalMs?: number; keepMs?: number; timer?: boolean } = {},
  ) {
    this.now = options.now ?? Date.now;
    this.intervalMs = options.intervalMs ?? HISTORY_INTERVAL_MS;
    this.ring = new Array(Math.ceil((options.keepMs ?? HISTORY_KEEP_MS) / this.intervalMs)).fill(undefined);
    this.since = this.now();
    if (options.timer !== false) {
      this.timer = setInterval(() => this.sample(), this.intervalMs);
      this.timer.unref();
    }
  }

  /** Stored device log records (the admin's records feed); anything without a string kind is skipped. */
  observe(records: readonly unknown[]): void {
    for (const r of records) {
      const kind = (r as { kind?: unknown } | null)?.kind;
      if (typeof kind !== 'string') continue;
      this.events++;
      if (ERROR_KINDS.has(kind)) this.errors++;
      else if (kind === 'auth_failure') this.authFailures++;
    }
  }

  /** Closes the interval: one sample into the ring (the oldest goes once it is full). */
  sample(): HistorySample {
    const at = this.now();
    let sessions = 0;
    let connected = 0;
    for (const n of this.nodes()) {
      if (n.status === 'gone') continue;
      sessions += n.sessions;
      connected += n.connected;
    }
    const seconds = Math.max(1, at - this.since) / 1000;
    const s: HistorySample = {
      at,
      sessions,
      connected,
      eventsPerSecond: Math.round((this.events / seconds) * 100) / 100,
      errors: this.errors,
      authFailures: this.authFailures,
    };
    this.ring[this.next] = s;
    this.next = (this.next + 1) % this.ring.length;
    this.since = at;
    this.events = 0;
    this.errors = 0;
    this.authFailures = 0;
    return s;
  }

  /** The samples of the last hour, oldest first. */
  list(): HistorySample[] {
    const out: HistorySample[] = [];
    for (let i = 0; i < this.ring.length; i++) {
      const s = this.ring[(this.next + i) % this.ring.length];
      if (s !== undefined) out.push(s);
    }
    return out;
  }

  close(): void {
    clearInterval(this.timer);
  }
}

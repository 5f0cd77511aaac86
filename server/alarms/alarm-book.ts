/**
 * The alarms of the cluster as this node knows them, and the one way to raise
 * or clear one. Detectors say what they want (raise this, clear that); the
 * book writes it to the history only when the alarm's newest record says
 * otherwise, conditionally on that record, so that of several nodes seeing
 * the same problem exactly one writes the raise and delivers it to the
 * channels (onWritten), and a raised alarm is not raised again until cleared.
 *
 * A write that fails (the bus or the stream is down, which is when alarms
 * matter most) stays pending and is tried again every retryMs; the newest
 * wish for an alarm replaces an older one.
 *
 * The list the API and UI show is a mirror of the history's newest record per
 * alarm, kept current by the history's watch (other nodes' writes included).
 */
import type { Logger } from 'pino';
import { type Alarm, type AlarmKind, type AlarmRecord, type AlarmSeverity, alarmId } from './alarm.ts';
import type { AlarmHistory, StoredAlarm } from './history.ts';

export interface AlarmSpec {
  kind: AlarmKind;
  subject: string;
  severity: AlarmSeverity;
  message: string;
}

type Wish = ({ raise: AlarmSpec } | { clear: { kind: AlarmKind; subject: string; message?: string } }) & {
  /** When the wish was made (a raise not written for long is delivered anyway). */
  at: number;
  /** Delivered before it could be written: not delivered again when the write succeeds. */
  deliveredEarly?: boolean;
  /** The `at` of the record this wish last tried to write: found stored later, the write went through. */
  triedAt?: number;
};

export interface AlarmBookOptions {
  history: AlarmHistory;
  nodeId: string;
  now?: () => number;
  logger?: Logger;
  /** Every record this node wrote (it raised or cleared first): the channels deliver it. */
  onWritten?: (record: AlarmRecord) => void;
  /** How often failed writes are tried again (default 2 s). */
  retryMs?: number;
  /** Records loaded into the mirror at start (default 2000). */
  loadLimit?: number;
  /**
   * A raise the history could not take for this long (the bus or JetStream is
   * down, as when every NATS server is) is delivered to the channels anyway,
   * without the cluster-wide de-duplication (default 10 s).
   */
  deliverUnwrittenAfterMs?: number;
}

interface Known {
  stored: StoredAlarm;
  /** Raises seen by this node since it started (its own detectors' repeats included). */
  count: number;
}

export class AlarmBook {
  private readonly known = new Map<string, Known>();
  private readonly wishes = new Map<string, Wish>();
  private readonly running = new Map<string, Promise<void>>();
  private readonly listeners = new Set<() => void>();
  private readonly stopWatch: () => void;
  private readonly timer: NodeJS.Timeout;
  private readonly now: () => number;
  private closed = false;

  private constructor(private readonly options: AlarmBookOptions) {
    this.now = options.now ?? Date.now;
    this.stopWatch = options.history.watch((stored) => this.apply(stored));
    this.timer = setInterval(() => this.retry(), options.retryMs ?? 2000);
    this.timer.unref();
  }

  static async open(options: AlarmBookOptions): Promise<AlarmBook> {
    const book = new AlarmBook(options);
    try {
      const past = await options.history.list({ limit: options.loadLimit ?? 2000 });
      for (const stored of past.reverse()) book.apply(stored);
    } catch (err) {
      options.logger?.warn({ err }, 'alarm history not readable at start: the list fills as alarms come');
    }
    return book;
  }

  get history(): AlarmHistory {
    return this.options.history;
  }

  /** Raises the alarm unless it is raised already (by anyone). */
  raise(spec: AlarmSpec): Promise<void> {
    const id = alarmId(spec.kind, spec.subject);
    const known = this.known.get(id);
    if (known?.stored.record.state === 'raised' && !this.wishes.has(id)) {
      known.count++;
      return Promise.resolve();
    }
    return this.wish(id, { raise: spec, at: this.now() });
  }

  /** Clears the alarm when it is raised. */
  clear(kind: AlarmKind, subject: string, message?: string): Promise<void> {
    const id = alarmId(kind, subject);
    const known = this.known.get(id);
    if (known?.stored.record.state !== 'raised' && !this.wishes.has(id)) return Promise.resolve();
    return this.wish(id, {
      clear: { kind, subject, ...(message === undefined ? {} : { message }) },
      at: this.now(),
    });
  }

  /** An event (a takeover): raised and cleared at once, so that it is delivered and kept, never active. */
  async event(spec: AlarmSpec): Promise<void> {
    await this.raise(spec);
    await this.clear(spec.kind, spec.subject, spec.message);
  }

  isActive(kind: AlarmKind, subject: string): boolean {
    return this.known.get(alarmId(kind, subject))?.stored.record.state === 'raised';
  }

  /** Active first, then the newest. */
  list(activeOnly = false): Alarm[] {
    const out: Alarm[] = [];
    for (const { stored, count } of this.known.values()) {
      const r = stored.record;
      if (activeOnly && r.state !== 'raised') continue;
      out.push({
        id: r.id,
        kind: r.kind,
        severity: r.severity,
        subject: r.subject,
        message: r.message,
        since: r.since,
        lastAt: r.at,
        count: Math.max(1, count),
        active: r.state === 'raised',
      });
    }
    return out.sort((a, b) => Number(b.active) - Number(a.active) || b.lastAt - a.lastAt);
  }

  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Writes still waiting (a failed write is retried): for health and tests. */
  pending(): number {
    return this.wishes.size;
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    this.stopWatch();
    await Promise.allSettled([...this.running.values()]);
  }

  private apply(stored: StoredAlarm): void {
    const id = stored.record.id;
    const prev = this.known.get(id);
    if (prev && prev.stored.seq >= stored.seq) return;
    const raisedAgain = stored.record.state === 'raised' && prev?.stored.record.state !== 'raised';
    this.known.set(id, { stored, count: (prev?.count ?? 0) + (raisedAgain ? 1 : 0) });
    for (const l of this.listeners) {
      try {
        l();
      } catch (err) {
        this.options.logger?.error({ err }, 'alarm listener threw');
      }
    }
  }

  private wish(id: string, wish: Wish): Promise<void> {
    const pending = this.wishes.get(id);
    const running = this.running.get(id);
    // The same wish again (a detector repeats itself each tick): the write under way, or the
    // retry timer, covers it, and the first wish keeps its age (see deliverUnwrittenAfterMs).
    if (pending && 'raise' in pending === 'raise' in wish) return running ?? Promise.resolve();
    this.wishes.set(id, wish);
    return this.run(id);
  }

  /** One writer per alarm in this process: the next one starts when the last is done. */
  private run(id: string): Promise<void> {
    const before = this.running.get(id) ?? Promise.resolve();
    const next = before.then(() => this.fulfil(id));
    this.running.set(id, next);
    void next.finally(() => {
      if (this.running.get(id) === next) this.running.delete(id);
    });
    return next;
  }

  private retry(): void {
    if (this.closed) return;
    const late = this.now() - (this.options.deliverUnwrittenAfterMs ?? 10_000);
    for (const [id, wish] of this.wishes) {
      if ('raise' in wish && !wish.deliveredEarly && wish.at <= late) {
        wish.deliveredEarly = true;
        this.options.logger?.warn(
          { alarm: id },
          'alarm history unreachable: delivering the alarm unrecorded',
        );
        this.options.onWritten?.(this.recordFor(wish, undefined));
      }
      if (!this.running.has(id)) void this.run(id);
    }
  }

  private async fulfil(id: string): Promise<void> {
    const { history, logger } = this.options;
    for (let attempt = 0; attempt < 3 && !this.closed; attempt++) {
      const wish = this.wishes.get(id);
      if (!wish) return;
      let latest: StoredAlarm | undefined;
      try {
        latest = await history.latest(id);
        if (latest) this.apply(latest);
        const raised = latest?.record.state === 'raised';
        const record = this.recordFor(wish, latest);
        if ('raise' in wish ? raised : !raised) {
          if (this.wishes.get(id) === wish) this.wishes.delete(id);
          // This wish's own write went through, but its answer was lost (a timeout under load, a
          // reconnect): nobody else will deliver it. Otherwise someone else wrote it, or it is so
          // (an older record of this node, e.g. the raise a quick clear-and-raise replaced, was
          // delivered when it was written).
          if (
            wish.triedAt !== undefined &&
            latest?.record.node === this.options.nodeId &&
            latest.record.at === wish.triedAt &&
            !wish.deliveredEarly
          ) {
            this.options.onWritten?.(latest.record);
          }
          return;
        }
        wish.triedAt = record.at;
        const stored = await history.append(record, latest?.seq ?? 0);
        if (!stored) continue; // another writer came first: look again
        this.apply(stored);
        if (this.wishes.get(id) === wish) this.wishes.delete(id);
        if (!wish.deliveredEarly) this.options.onWritten?.(record);
        return;
      } catch (err) {
        logger?.warn({ err, alarm: id }, 'alarm not written yet; will retry');
        return;
      }
    }
  }

  private recordFor(wish: Wish, latest: StoredAlarm | undefined): AlarmRecord {
    const at = this.now();
    const node = this.options.nodeId;
    if ('raise' in wish) {
      const s = wish.raise;
      return {
        v: 1,
        id: alarmId(s.kind, s.subject),
        kind: s.kind,
        subject: s.subject,
        severity: s.severity,
        state: 'raised',
        message: s.message,
        since: at,
        at,
        node,
      };
    }
    const c = wish.clear;
    const prev = latest?.record;
    return {
      v: 1,
      id: alarmId(c.kind, c.subject),
      kind: c.kind,
      subject: c.subject,
      severity: prev?.severity ?? 'info',
      state: 'cleared',
      message: c.message ?? prev?.message ?? '',
      since: prev?.since ?? at,
      at,
      node,
    };
  }
}

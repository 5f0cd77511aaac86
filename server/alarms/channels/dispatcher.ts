/**
 * Hands each alarm record this node wrote to every configured channel. Each
 * channel has its own queue and retries with exponential backoff and jitter,
 * so a channel that hangs or fails never holds up another, the book or the
 * node; deliver() never throws or waits. A channel may take only some
 * records (wants) and let some go on purpose (suppressed: the SMS channel's
 * hourly budget). Outcomes are counted in
 * mmgw_alarm_deliveries_total{channel, result}.
 */
import type { Logger } from 'pino';
import { Counter, type Registry as PromRegistry } from 'prom-client';
import type { AlarmRecord } from '../alarm.ts';

export interface AlarmChannel {
  /** `webhook`, `email`, `sms`: the metrics label. */
  readonly name: string;
  /** Whether the record is for this channel at all (default: every record). */
  wants?(record: AlarmRecord): boolean;
  /**
   * Resolves once the destination accepted the record, or with `suppressed` when the channel let it
   * go on purpose; rejects otherwise (the dispatcher retries).
   */
  // biome-ignore lint/suspicious/noConfusingVoidType: webhook and e-mail resolve with nothing.
  send(record: AlarmRecord): Promise<void | 'suppressed'>;
  close?(): void;
}

export interface DispatcherOptions {
  channels: readonly AlarmChannel[];
  logger?: Logger;
  metrics?: PromRegistry;
  /** Attempts per record and channel before it is given up (default 8). */
  maxAttempts?: number;
  /** First retry after about this long, doubling up to maxDelayMs (defaults 1 s, 5 min). */
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** Records waiting per channel; beyond it the oldest is dropped (default 1000). */
  maxQueue?: number;
}

export type DeliveryResult = 'delivered' | 'suppressed' | 'failed' | 'given_up' | 'dropped';

interface Lane {
  channel: AlarmChannel;
  queue: AlarmRecord[];
  attempt: number;
  busy: boolean;
  timer?: NodeJS.Timeout;
}

const counters = new WeakMap<PromRegistry, Counter<'channel' | 'result'>>();

function deliveriesCounter(registry: PromRegistry): Counter<'channel' | 'result'> {
  let c = counters.get(registry);
  if (!c) {
    c = new Counter({
      name: 'mmgw_alarm_deliveries_total',
      help: 'Alarm deliveries per channel: delivered, suppressed (over the channel budget), failed (an attempt; retried), given_up (after the last attempt), dropped (queue full).',
      labelNames: ['channel', 'result'],
      registers: [registry],
    });
    counters.set(registry, c);
  }
  return c;
}

export class ChannelDispatcher {
  private readonly lanes: Lane[];
  private readonly counter: Counter<'channel' | 'result'> | undefined;
  private closed = false;
  /** Outcomes, for tests and health: channel → result → count. */
  readonly outcomes = new Map<string, Map<DeliveryResult, number>>();

  constructor(private readonly options: DispatcherOptions) {
    this.lanes = options.channels.map((channel) => ({ channel, queue: [], attempt: 0, busy: false }));
    this.counter = options.metrics ? deliveriesCounter(options.metrics) : undefined;
  }

  get channelNames(): string[] {
    return this.lanes.map((l) => l.channel.name);
  }

  deliver(record: AlarmRecord): void {
    if (this.closed) return;
    for (const lane of this.lanes) {
      if (lane.channel.wants?.(record) === false) continue;
      lane.queue.push(record);
      if (lane.queue.length > (this.options.maxQueue ?? 1000)) {
        lane.queue.shift();
        lane.attempt = 0;
        this.count(lane, 'dropped');
      }
      this.pump(lane);
    }
  }

  close(): void {
    this.closed = true;
    for (const lane of this.lanes) {
      clearTimeout(lane.timer);
      lane.channel.close?.();
    }
  }

  private count(lane: Lane, result: DeliveryResult): void {
    this.counter?.inc({ channel: lane.channel.name, result });
    const byResult = this.outcomes.get(lane.channel.name) ?? new Map<DeliveryResult, number>();
    byResult.set(result, (byResult.get(result) ?? 0) + 1);
    this.outcomes.set(lane.channel.name, byResult);
  }

  private pump(lane: Lane): void {
    if (lane.busy || lane.timer || this.closed) return;
    const record = lane.queue[0];
    if (!record) return;
    lane.busy = true;
    Promise.resolve()
      .then(() => lane.channel.send(record))
      .then(
        (outcome) => {
          lane.busy = false;
          if (lane.queue[0] === record) lane.queue.shift();
          lane.attempt = 0;
          this.count(lane, outcome === 'suppressed' ? 'suppressed' : 'delivered');
          this.pump(lane);
        },
        (err: unknown) => {
          lane.busy = false;
          lane.attempt++;
          this.count(lane, 'failed');
          const max = this.options.maxAttempts ?? 8;
          if (lane.attempt >= max) {
            this.options.logger?.error(
              { err, channel: lane.channel.name, alarm: record.id, attempts: lane.attempt },
              'alarm not delivered: given up',
            );
            if (lane.queue[0] === record) lane.queue.shift();
            lane.attempt = 0;
            this.count(lane, 'given_up');
            this.pump(lane);
            return;
          }
          this.options.logger?.warn(
            { err, channel: lane.channel.name, alarm: record.id, attempt: lane.attempt },
            'alarm delivery failed; retrying',
          );
          const base = this.options.baseDelayMs ?? 1000;
          const cap = this.options.maxDelayMs ?? 5 * 60_000;
          const delay = Math.min(cap, base * 2 ** (lane.attempt - 1));
          // Full jitter on half the delay: nodes that failed together do not retry together.
          lane.timer = setTimeout(
            () => {
              lane.timer = undefined;
              this.pump(lane);
            },
            delay / 2 + Math.random() * (delay / 2),
          );
          lane.timer.unref();
        },
      );
  }
}

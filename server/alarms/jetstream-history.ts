/**
 * Alarm history in cluster mode: the JetStream stream MMGW_ALARMS (file
 * storage, `replicas` copies on a NATS cluster), one message per record on
 * `mmgw.alarms.h.<kind>.<subject, base64url>`. Every admin node reads the
 * same stream, so each shows the same history, and a restarted one the past.
 *
 * The conditional append is JetStream's own: a publish that expects the
 * subject's last sequence (Nats-Expected-Last-Subject-Sequence) fails when
 * another node wrote that alarm first. watch() is an ordered consumer that
 * starts right after the stream's last message at open, so nothing written
 * between open and a later list() is missed (the book drops what it has).
 */
import { type JetStreamClient, type JetStreamManager, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { DeliverPolicy, StorageType } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { type AlarmRecord, readAlarmRecord } from './alarm.ts';
import { type AlarmHistory, DEFAULT_RETENTION, type HistoryRetention, type StoredAlarm } from './history.ts';

export const ALARM_STREAM = 'MMGW_ALARMS';
const SUBJECT_PREFIX = 'mmgw.alarms.h';

/** JetStream's "wrong last sequence" (the conditional publish lost). */
const WRONG_LAST_SEQUENCE = 10071;
const NO_MESSAGE_FOUND = 10037;
/** A replica not heard from for this long (and not current) counts as gone. */
const PEER_SILENT_NS = 5e9;

function subjectOf(id: string): string {
  const colon = id.indexOf(':');
  const kind = id.slice(0, colon);
  // base64url has no '.', '*', '>' or spaces: one NATS token; the prefix keeps it from being empty.
  return `${SUBJECT_PREFIX}.${kind}.s${Buffer.from(id.slice(colon + 1)).toString('base64url')}`;
}

function decode(seq: number, data: Uint8Array): StoredAlarm | undefined {
  try {
    const record = readAlarmRecord(JSON.parse(new TextDecoder().decode(data)));
    return record ? { seq, record } : undefined;
  } catch {
    return undefined;
  }
}

export interface JetStreamHistoryOptions {
  /** Copies of the stream (config alarms.history.replicas); 1 on a single server. */
  replicas: number;
  retention?: HistoryRetention;
  logger?: Logger;
}

export class JetStreamAlarmHistory implements AlarmHistory {
  readonly backend = 'jetstream' as const;
  private readonly listeners = new Set<(stored: StoredAlarm) => void>();
  private closed = false;
  private stopConsumer: (() => void) | undefined;

  private constructor(
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
    private readonly logger: Logger | undefined,
  ) {}

  /** Creates the stream when it is missing; throws when JetStream is not there. */
  static async open(nc: NatsConnection, options: JetStreamHistoryOptions): Promise<JetStreamAlarmHistory> {
    const jsm = await jetstreamManager(nc, { timeout: 5000 });
    const retention = options.retention ?? DEFAULT_RETENTION;
    const config = {
      name: ALARM_STREAM,
      subjects: [`${SUBJECT_PREFIX}.>`],
      storage: StorageType.File,
      num_replicas: options.replicas,
      max_msgs: retention.maxRecords,
      allow_direct: true,
    };
    try {
      await jsm.streams.info(ALARM_STREAM);
    } catch {
      try {
        await jsm.streams.add(config);
      } catch (err) {
        // A stream of `replicas` copies needs as many servers; a lone server (a test) holds one.
        if (options.replicas > 1 && /replicas/i.test((err as Error).message)) {
          options.logger?.warn(
            { err, replicas: options.replicas },
            'alarm history stream with one replica: the NATS servers are not a cluster of that size',
          );
          await jsm.streams.add({ ...config, num_replicas: 1 });
        } else {
          // Another node created it at the same moment.
          await jsm.streams.info(ALARM_STREAM);
        }
      }
    }
    const history = new JetStreamAlarmHistory(jetstream(nc, { timeout: 5000 }), jsm, options.logger);
    const info = await jsm.streams.info(ALARM_STREAM);
    history.follow(info.state.last_seq + 1);
    return history;
  }

  async latest(id: string): Promise<StoredAlarm | undefined> {
    try {
      const msg = await this.jsm.streams.getMessage(ALARM_STREAM, { last_by_subj: subjectOf(id) });
      return msg ? decode(msg.seq, msg.data) : undefined;
    } catch (err) {
      // Older clients and servers answer "no message found" (10037) with an error.
      if ((err as { code?: unknown }).code === NO_MESSAGE_FOUND) return undefined;
      if (/no message found/i.test((err as Error).message)) return undefined;
      throw err;
    }
  }

  async append(record: AlarmRecord, expectedSeq: number): Promise<StoredAlarm | undefined> {
    try {
      const ack = await this.js.publish(subjectOf(record.id), JSON.stringify(record), {
        expect: { lastSubjectSequence: expectedSeq },
      });
      return { seq: ack.seq, record };
    } catch (err) {
      // JetStreamApiError's code is JetStream's err_code.
      const e = err as { code?: unknown; message?: string };
      if (e.code === WRONG_LAST_SEQUENCE || /wrong last sequence/i.test(e.message ?? '')) {
        return undefined;
      }
      throw err;
    }
  }

  async list(options: { limit: number; beforeSeq?: number }): Promise<StoredAlarm[]> {
    const { state } = await this.jsm.streams.info(ALARM_STREAM);
    const end = Math.min(options.beforeSeq ?? state.last_seq + 1, state.last_seq + 1);
    const start = Math.max(state.first_seq, end - options.limit);
    if (state.messages === 0 || start >= end || options.limit <= 0) return [];
    const consumer = await this.js.consumers.get(ALARM_STREAM, {
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: start,
    });
    const out: StoredAlarm[] = [];
    const messages = await consumer.fetch({ max_messages: end - start, expires: 2000 });
    for await (const m of messages) {
      if (m.seq >= end) break;
      const stored = decode(m.seq, m.data);
      if (stored) out.push(stored);
      if (m.seq >= end - 1) break;
    }
    await consumer.delete().catch(() => undefined);
    return out.reverse().slice(0, options.limit);
  }

  /**
   * The NATS cluster's own view of its servers, as JetStream keeps it for the
   * stream's replicas: the leader, and each follower with whether it is
   * current or offline. Names are the servers' server_name.
   */
  async peers(): Promise<{ name: string; up: boolean }[]> {
    const { cluster } = await this.jsm.streams.info(ALARM_STREAM);
    const out: { name: string; up: boolean }[] = [];
    if (cluster?.leader) out.push({ name: cluster.leader, up: true });
    for (const r of cluster?.replicas ?? []) {
      // `active` is nanoseconds since the leader last heard from it.
      out.push({ name: r.name, up: !r.offline && (r.current || r.active < PEER_SILENT_NS) });
    }
    return out;
  }

  watch(listener: (stored: StoredAlarm) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.listeners.clear();
    this.stopConsumer?.();
  }

  /** Every record from `startSeq` on, for as long as the history is open (the ordered consumer rides out reconnects). */
  private follow(startSeq: number): void {
    void (async () => {
      const consumer = await this.js.consumers.get(ALARM_STREAM, {
        deliver_policy: DeliverPolicy.StartSequence,
        opt_start_seq: startSeq,
      });
      if (this.closed) return;
      const messages = await consumer.consume();
      this.stopConsumer = () => void messages.close();
      for await (const m of messages) {
        const stored = decode(m.seq, m.data);
        if (!stored) continue;
        for (const l of this.listeners) l(stored);
      }
    })().catch((err: unknown) => {
      if (!this.closed)
        this.logger?.error({ err }, 'alarm history watch ended: other nodes’ alarms are no longer seen');
    });
  }
}

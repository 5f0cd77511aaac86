/**
 * Wake-ups (issue 14, first slice): a device without a session is woken
 * through the channels it registered, so that mail and chat reach a phone
 * whose app sleeps. What is built: Web Push channels (push.register and
 * friends, methods.ts), kept per device in PairRecords (`push.reg`; the
 * cluster's shared state in cluster mode); the VAPID key pair (vapid.ts); one
 * wake-up per device per interval with the count of what it missed
 * (coalescer.ts); the sender with its retries (web-push-sender.ts); pruning
 * of gone subscriptions (404/410, logged on the device); counters in /metrics.
 *
 * Fed by the transport: an INBOX watcher whose mail.new finds no session
 * (bus.no_responders) calls wake() with how many new messages it could not
 * push, and stays on IDLE (parked) when the device can be woken; a chat
 * message that finds no session comes through DevicePusher's undelivered
 * listener. The device's session coming back resets its count.
 *
 * Not built yet (issue 14): FCM, APNs and SMS channels (refused with
 * push.kind_not_enabled), content in the payload by service profile, expiry
 * of unused registrations, the admin UI's view of them, the usage report's
 * counters, `npm run bench:push`, and wake-ups for a session that is detached
 * but still resumable (its edge takes pushes into the replay buffer, so the
 * transport sees no bus.no_responders).
 */
import { Counter, Histogram, type Registry } from 'prom-client';
import type { Logger } from 'pino';
import type { DestinationPolicy } from '../../net/destination-policy.ts';
import { nullRecorder, type Recorder } from '../../records/types.ts';
import type { PairRecords } from '../kit/pair-records.ts';
import type { TransportStorage } from '../kit/transport-storage.ts';
import type { MethodDefinition } from '../types.ts';
import { WakeCoalescer, type WakeKind, type WakeTally } from './coalescer.ts';
import { pushMethods } from './methods.ts';
import { PushRegistrations } from './registrations.ts';
import { loadVapidKeys, type VapidKeys } from './vapid.ts';
import { type WebPushMessage, WebPushSender } from './web-push-sender.ts';

export { WakeCoalescer, type WakeKind, type WakeTally } from './coalescer.ts';
export { PushRegistrations } from './registrations.ts';

/** The config's `push` section (server/config.ts). */
export interface PushSettings {
  vapid?: VapidKeys;
  subject?: string;
  intervalMs?: number;
  maxPerDevice?: number;
}

export const DEFAULT_WAKE_INTERVAL_MS = 30_000;
export const DEFAULT_MAX_CHANNELS = 5;
const DEFAULT_SUBJECT = 'mailto:postmaster@invalid';

/**
 * Per kind: how long a push service keeps a wake-up for an offline phone, and
 * how urgent it is (RFC 8030 §5.3: `high` may wake a phone in Doze, `normal`
 * waits for its next window). A chat message is stale within the hour; mail
 * can wait for the morning.
 */
const PER_KIND: Record<WakeKind, { ttl: number; urgency: WebPushMessage['urgency'] }> = {
  chat: { ttl: 3600, urgency: 'high' },
  mail: { ttl: 24 * 3600, urgency: 'normal' },
};

/** The payload: counts only, and a placeholder text (no sender, no subject: privacy by default). */
export function wakePayload(tally: WakeTally): string {
  const count = tally.mail + tally.chat;
  return JSON.stringify({
    kind: tally.kind,
    count,
    mail: tally.mail,
    chat: tally.chat,
    text: count === 1 ? 'New message' : `${count} new messages`,
  });
}

export interface PushServiceOptions {
  storage: TransportStorage;
  dataDir: string;
  policy: DestinationPolicy;
  settings?: PushSettings;
  metrics?: Registry;
  recorder?: Recorder;
  logger?: Logger;
}

export interface PushService {
  methods: MethodDefinition<any>[];
  /** For PairRecords.share in cluster mode. */
  records: PairRecords<object>[];
  /** Whether the device has a channel to be woken through. */
  canWake(deviceId: string): boolean;
  /** `n` items of `kind` found no session: a wake-up now or with the next. True when the device has a channel. */
  wake(deviceId: string, kind: WakeKind, n: number): boolean;
  /** The device has a session again. */
  deviceBack(deviceId: string): void;
  /** Resolves when the wake-ups under way are through (tests, stop). */
  settled(): Promise<void>;
  close(): Promise<void>;
}

function pushMetrics(registry: Registry | undefined) {
  const existing = registry?.getSingleMetric('mmgw_wakeups_total');
  if (existing) {
    return {
      outcomes: existing as Counter<'channel' | 'result'>,
      latency: registry!.getSingleMetric('mmgw_wakeup_latency_seconds') as Histogram<'channel'>,
    };
  }
  return {
    outcomes: new Counter({
      name: 'mmgw_wakeups_total',
      help: 'Wake-ups sent to devices without a session, by channel kind and result (sent, failed, pruned).',
      labelNames: ['channel', 'result'],
      registers: registry ? [registry] : [],
    }),
    latency: new Histogram({
      name: 'mmgw_wakeup_latency_seconds',
      help: 'From the first item a wake-up tells of to the push service accepting it, by channel kind.',
      labelNames: ['channel'],
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers: registry ? [registry] : [],
    }),
  };
}

export function openPushService(opts: PushServiceOptions): PushService {
  const { logger, policy } = opts;
  const settings = opts.settings ?? {};
  const recorder = opts.recorder ?? nullRecorder;
  const registrations = new PushRegistrations(opts.storage);
  const vapid = loadVapidKeys(opts.dataDir, settings.vapid, logger);
  const sender = new WebPushSender({
    policy,
    vapid: { subject: settings.subject ?? DEFAULT_SUBJECT, ...vapid },
  });
  const { outcomes, latency } = pushMetrics(opts.metrics);
  const underWay = new Set<Promise<void>>();

  const deliver = async (deviceId: string, tally: WakeTally): Promise<void> => {
    const { ttl, urgency } = PER_KIND[tally.chat > 0 ? 'chat' : 'mail'];
    const message: WebPushMessage = { payload: wakePayload(tally), ttl, urgency, topic: 'wake' };
    for (const { id, record } of registrations.list(deviceId)) {
      const sent = await sender.send(record, message);
      if (sent.result === 'sent') {
        outcomes.inc({ channel: record.kind, result: 'sent' });
        latency.observe({ channel: record.kind }, (Date.now() - tally.since) / 1000);
        continue;
      }
      if (sent.result === 'failed') {
        outcomes.inc({ channel: record.kind, result: 'failed' });
        logger?.info({ deviceId, registration: id, why: sent.why }, 'wake-up not sent');
        continue;
      }
      outcomes.inc({ channel: record.kind, result: 'pruned' });
      await registrations.remove(deviceId, id).catch((err: unknown) => {
        logger?.warn({ err, deviceId, registration: id }, 'gone push registration not removed');
      });
      recorder.log({
        imei: deviceId,
        kind: 'push_removed',
        service: 'session',
        code: `http_${sent.status}`,
        message: `wake-up channel ${id} removed: the push service answered ${sent.status}`,
        detail: { registration: id, channel: record.kind },
      });
    }
  };

  const coalescer = new WakeCoalescer({
    intervalMs: settings.intervalMs ?? DEFAULT_WAKE_INTERVAL_MS,
    send: (deviceId, tally) => {
      const done = deliver(deviceId, tally).catch((err: unknown) =>
        logger?.warn({ err, deviceId }, 'wake-up failed'),
      );
      underWay.add(done);
      void done.finally(() => underWay.delete(done));
    },
  });

  const canWake = (deviceId: string) => registrations.list(deviceId).length > 0;
  return {
    methods: pushMethods({
      registrations,
      policy,
      maxPerDevice: settings.maxPerDevice ?? DEFAULT_MAX_CHANNELS,
      vapidPublicKey: vapid.publicKey,
      now: Date.now,
    }),
    records: [registrations],
    canWake,
    wake(deviceId, kind, n) {
      if (!canWake(deviceId)) return false;
      coalescer.note(deviceId, kind, n);
      return true;
    },
    deviceBack: (deviceId) => coalescer.reset(deviceId),
    async settled() {
      await Promise.allSettled([...underWay]);
    },
    async close() {
      coalescer.close();
      await Promise.allSettled([...underWay]);
    },
  };
}

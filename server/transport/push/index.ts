/**
 * Wake-ups (issue 14): a device without a session is woken through the
 * channels it registered, so that mail and chat reach a phone whose app
 * sleeps. What is built: channels of kind webpush, fcm and apns
 * (push.register and friends, methods.ts; fcm and apns only where the
 * operator configured them, settings.ts), kept per device in PairRecords
 * (`push.reg`; the cluster's shared state in cluster mode); the VAPID key
 * pair (vapid.ts); one wake-up per device per interval with the count of what
 * it missed (coalescer.ts); one sender per kind behind one interface
 * (channel.ts: web-push-sender.ts, fcm-sender.ts, apns-sender.ts) and the
 * retries around them; pruning of gone channels (Web Push 404/410, FCM
 * UNREGISTERED, APNs BadDeviceToken/Unregistered, logged on the device);
 * counters per channel kind in /metrics.
 *
 * Fed by the transport: an INBOX watcher whose mail.new finds no session
 * (bus.no_responders) calls wake() with how many new messages it could not
 * push, and stays on IDLE (parked) when the device can be woken; a chat
 * message that finds no session comes through DevicePusher's undelivered
 * listener. So does a mail.new or chat message that the edge took for a
 * session without a carrier (detached, kept for a resume: the phone's socket
 * is gone and its app sleeps): the edge's reply says `detached`, and the item
 * waits in the replay buffer while the wake-up goes. An edge of an older
 * release does not say it, and its detached sessions are not woken. The
 * device's session coming back (a new one, or a Resume) resets its count.
 *
 * SMS over SMPP (sms-sender.ts) is the last resort: where the operator
 * configured push.sms and the device's service profile allows it, sent only
 * when the device has no other channel or none of its others got this
 * wake-up through, and within hourly limits per device and per operator
 * counted in this node (sms-limits.ts).
 *
 * Where the device's service profile allows it (policies.wakeupPreview), a
 * wake-up carries the newest item's sender, and a mail's subject, bounded
 * and cleaned (preview.ts); never in an SMS. A channel unused for
 * push.expireDays is removed by a periodic sweep (expiry.ts).
 *
 * Operators see a device's channels, redacted, and remove one through the
 * admin API, which asks this node over the bus (admin-view.ts); each
 * channel's outcomes (sent, failed, pruned, latency) also go to the records
 * as wake-up deltas per hour (Recorder.wakeup), which the usage report sums
 * across nodes.
 *
 * Not built yet (issue 14): alarms over the SMPP link, APNs alert pushes by
 * service profile (pushType is the operator's, for all devices). Measured by `npm run bench:push` (test/bench/push/).
 */
import { Counter, Histogram, type Registry } from 'prom-client';
import type { Logger } from 'pino';
import type { Bus } from '../../bus/bus.ts';
import type { DestinationPolicy } from '../../net/destination-policy.ts';
import { nullRecorder, type Recorder, WAKEUP_LATENCY_BOUNDS_S } from '../../records/types.ts';
import type { DeviceProfile } from '../../store/device-profile.ts';
import type { SharedState } from '../../store/shared/table.ts';
import type { PairRecords } from '../kit/pair-records.ts';
import type { TransportStorage } from '../kit/transport-storage.ts';
import type { MethodDefinition } from '../types.ts';
import { servePushAdmin } from './admin-view.ts';
import { ApnsSender } from './apns-sender.ts';
import { type ChannelSender, type RetryOptions, sendWithRetries, type WakeMessage } from './channel.ts';
import { WakeCoalescer, type WakeKind, type WakeTally } from './coalescer.ts';
import { DEFAULT_EXPIRE_DAYS, expireUnused, recordUse, scheduleSweeps } from './expiry.ts';
import { FcmSender } from './fcm-sender.ts';
import { type PushKind, pushMethods } from './methods.ts';
import { allowedPreview, type WakePreview } from './preview.ts';
import { type PushKindOf, type PushRegistration, PushRegistrations } from './registrations.ts';
import {
  APNS_HOSTS,
  type ApnsSettings,
  type FcmSettings,
  loadApnsKey,
  loadServiceAccount,
  type SmsSettings,
} from './settings.ts';
import { SmsLimits } from './shared-sms-limits.ts';
import { type Admission, smsAdmission } from './sms-limits.ts';
import { SmsSender } from './sms-sender.ts';
import { loadVapidKeys, type VapidKeys } from './vapid.ts';
import { WebPushSender } from './web-push-sender.ts';

export { WakeCoalescer, type WakeKind, type WakeTally } from './coalescer.ts';
export { PushRegistrations } from './registrations.ts';

/** The config's `push` section (server/config.ts). */
export interface PushSettings {
  vapid?: VapidKeys;
  subject?: string;
  intervalMs?: number;
  maxPerDevice?: number;
  /** A channel neither registered again nor used for this many days is removed; 0: never. Default 60. */
  expireDays?: number;
  fcm?: FcmSettings;
  apns?: ApnsSettings;
  sms?: SmsSettings;
}

export const DEFAULT_WAKE_INTERVAL_MS = 30_000;
export const DEFAULT_MAX_CHANNELS = 5;
const DEFAULT_SUBJECT = 'mailto:postmaster@invalid';

/**
 * Per kind: how long a push service keeps a wake-up for an offline phone, and
 * how urgent it is (RFC 8030 §5.3: `high` may wake a phone in Doze, `normal`
 * waits for its next window; FCM's android priority and APNs' priority say
 * the same). A chat message is stale within the hour; mail can wait for the
 * morning.
 */
const PER_KIND: Record<WakeKind, { ttl: number; urgency: WakeMessage['urgency'] }> = {
  chat: { ttl: 3600, urgency: 'high' },
  mail: { ttl: 24 * 3600, urgency: 'normal' },
};

export interface PushServiceOptions {
  storage: TransportStorage;
  dataDir: string;
  policy: DestinationPolicy;
  settings?: PushSettings;
  metrics?: Registry;
  recorder?: Recorder;
  logger?: Logger;
  /** Trust anchors for FCM and APNs instead of the system's (tests); retries of every channel. */
  ca?: string;
  retry?: RetryOptions;
  /** The device's service profile (whether it may have SMS wake-ups, its operator); absent: no SMS. */
  profileOf?(deviceId: string): Promise<DeviceProfile | undefined>;
  /** Where the admin asks about the devices' channels (Subjects.pushAdmin(nodeId)); absent: nobody asks. */
  admin?: { bus: Bus; nodeId: string };
}

type Senders = { [K in PushKind]?: ChannelSender<PushKindOf<K>> };

/** The sender of each configured kind; credentials read now, so that a bad file stops the start. */
function channelSenders(opts: PushServiceOptions, vapid: VapidKeys): Senders {
  const { policy, ca } = opts;
  const settings = opts.settings ?? {};
  const senders: Senders = {
    webpush: new WebPushSender({ policy, vapid: { subject: settings.subject ?? DEFAULT_SUBJECT, ...vapid } }),
  };
  if (settings.fcm) {
    const account = loadServiceAccount(settings.fcm.serviceAccountFile);
    const endpoint = settings.fcm.endpoint;
    senders.fcm = new FcmSender({
      account,
      policy,
      ...(endpoint ? { endpoint } : {}),
      ...(ca ? { ca } : {}),
    });
  }
  if (settings.apns) {
    const { keyId, teamId, keyFile, host = 'production', pushType } = settings.apns;
    const origin = host === 'production' || host === 'sandbox' ? APNS_HOSTS[host] : host;
    senders.apns = new ApnsSender({
      keyId,
      teamId,
      key: loadApnsKey(keyFile),
      origin,
      policy,
      ...(pushType ? { pushType } : {}),
      ...(ca ? { ca } : {}),
    });
  }
  if (settings.sms) {
    const { host, port, systemId, password, sourceAddress } = settings.sms;
    senders.sms = new SmsSender({
      host,
      port,
      systemId,
      password,
      sourceAddress,
      policy,
      ...(opts.logger ? { logger: opts.logger } : {}),
    });
  }
  return senders;
}

export interface PushService {
  methods: MethodDefinition<any>[];
  /** For PairRecords.share in cluster mode. */
  records: PairRecords<object>[];
  /** Cluster mode: the SMS limits are counted in the cluster's shared state from now on. */
  shareLimits(state: SharedState): Promise<void>;
  /** Whether the device has a channel to be woken through. */
  canWake(deviceId: string): boolean;
  /**
   * `n` items of `kind` found no session: a wake-up now or with the next.
   * True when the device has a channel. `preview`: the newest item's, shown
   * only where the device's profile allows.
   */
  wake(deviceId: string, kind: WakeKind, n: number, preview?: WakePreview): boolean;
  /** Removes the channels unused for push.expireDays now (run hourly by itself; tests). */
  sweep(): Promise<number>;
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
      items: registry!.getSingleMetric('mmgw_wakeup_items_total') as Counter<'kind'>,
    };
  }
  return {
    items: new Counter({
      name: 'mmgw_wakeup_items_total',
      help: 'New mail and chat messages that a device with a wake-up channel could not be given (no session, or no carrier), by kind: the wake-ups are these coalesced.',
      labelNames: ['kind'],
      registers: registry ? [registry] : [],
    }),
    outcomes: new Counter({
      name: 'mmgw_wakeups_total',
      help: 'Wake-ups sent to devices without a session, by channel kind and result (sent, failed, pruned); expired: channels removed unused.',
      labelNames: ['channel', 'result'],
      registers: registry ? [registry] : [],
    }),
    latency: new Histogram({
      name: 'mmgw_wakeup_latency_seconds',
      help: 'From the first item a wake-up tells of to the push service accepting it, by channel kind.',
      labelNames: ['channel'],
      buckets: [...WAKEUP_LATENCY_BOUNDS_S],
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
  const senders = channelSenders(opts, vapid);
  const enabled = new Set(Object.keys(senders) as PushKind[]);
  const send = (record: PushRegistration, message: WakeMessage) => {
    const sender = senders[record.kind] as ChannelSender<PushRegistration> | undefined;
    // A channel of a kind this node no longer sends (its config removed): kept, for a node that does.
    if (!sender) return Promise.resolve({ result: 'failed' as const, why: `${record.kind} not enabled` });
    return sendWithRetries(sender, record, message, opts.retry);
  };
  const { outcomes, latency, items } = pushMetrics(opts.metrics);
  const profileOf = opts.profileOf ?? (async () => undefined);
  const smsLimits = new SmsLimits({
    perDevicePerHour: settings.sms?.perDevicePerHour ?? 0,
    perOperatorPerHour: settings.sms?.perOperatorPerHour ?? 0,
    ...(logger ? { logger } : {}),
  });
  const admitSms = smsAdmission(smsLimits, profileOf);
  const underWay = new Set<Promise<void>>();

  /** One channel's try at one wake-up, counted and logged; a gone channel is removed. */
  const deliverOne = async (deviceId: string, id: string, record: PushRegistration, message: WakeMessage) => {
    const sent = await send(record, message);
    if (sent.result === 'sent') {
      const ms = Date.now() - message.tally.since;
      outcomes.inc({ channel: record.kind, result: 'sent' });
      latency.observe({ channel: record.kind }, ms / 1000);
      recorder.wakeup?.({ imei: deviceId, channel: record.kind, sent: 1, latencyMs: ms });
      await recordUse(registrations, deviceId, id, Date.now()).catch((err: unknown) => {
        logger?.warn({ err, deviceId, registration: id }, 'push registration use not recorded');
      });
      return sent.result;
    }
    if (sent.result === 'failed') {
      outcomes.inc({ channel: record.kind, result: 'failed' });
      recorder.wakeup?.({ imei: deviceId, channel: record.kind, failed: 1 });
      logger?.info({ deviceId, registration: id, why: sent.why }, 'wake-up not sent');
      return sent.result;
    }
    await registrations.remove(deviceId, id).catch((err: unknown) => {
      logger?.warn({ err, deviceId, registration: id }, 'gone push registration not removed');
    });
    // Counted once removed: a reader of the counter then finds the channel gone from push.list.
    outcomes.inc({ channel: record.kind, result: 'pruned' });
    recorder.wakeup?.({ imei: deviceId, channel: record.kind, pruned: 1 });
    recorder.log({
      imei: deviceId,
      kind: 'push_removed',
      service: 'session',
      code: sent.code,
      message: `wake-up channel ${id} removed: ${sent.why}`,
      detail: { registration: id, channel: record.kind },
    });
    return sent.result;
  };

  const deliver = async (deviceId: string, tally: WakeTally): Promise<void> => {
    const kind: WakeKind = tally.chat > 0 ? 'chat' : 'mail';
    const preview = tally.preview
      ? allowedPreview(tally.preview, (await profileOf(deviceId))?.policies.wakeupPreview)
      : undefined;
    const message: WakeMessage = { tally, kind, ...PER_KIND[kind], collapseKey: 'wake', preview };
    const channels = registrations.list(deviceId);
    let through = false;
    for (const { id, record } of channels) {
      if (record.kind !== 'sms' && (await deliverOne(deviceId, id, record, message)) === 'sent')
        through = true;
    }
    // SMS, the last resort: only when nothing else got this wake-up through.
    if (through) return;
    for (const { id, record } of channels) {
      if (record.kind !== 'sms') continue;
      const admitted: Admission = senders.sms
        ? await admitSms(deviceId)
        : { ok: false, why: 'sms not enabled' };
      if (!admitted.ok) {
        outcomes.inc({ channel: 'sms', result: 'failed' });
        recorder.wakeup?.({ imei: deviceId, channel: 'sms', failed: 1 });
        logger?.info({ deviceId, registration: id, why: admitted.why }, 'SMS wake-up not sent');
        continue;
      }
      if ((await deliverOne(deviceId, id, record, message)) !== 'sent') admitted.release();
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

  const expireDays = settings.expireDays ?? DEFAULT_EXPIRE_DAYS;
  const sweep = async () => {
    if (expireDays === 0) return 0;
    try {
      return await expireUnused(registrations, expireDays, Date.now(), (deviceId, id, record) => {
        outcomes.inc({ channel: record.kind, result: 'expired' });
        recorder.log({
          imei: deviceId,
          kind: 'push_removed',
          service: 'session',
          code: 'expired',
          message: `wake-up channel ${id} removed: neither registered again nor used for ${expireDays} days`,
          detail: { registration: id, channel: record.kind },
        });
      });
    } catch (err) {
      logger?.warn({ err }, 'expired push registrations not swept');
      return 0;
    }
  };
  const stopSweeps = scheduleSweeps(sweep);

  const adminSub = opts.admin && servePushAdmin(opts.admin.bus, opts.admin.nodeId, registrations);
  const canWake = (deviceId: string) => registrations.list(deviceId).length > 0;
  return {
    methods: pushMethods({
      registrations,
      enabled,
      policy,
      maxPerDevice: settings.maxPerDevice ?? DEFAULT_MAX_CHANNELS,
      vapidPublicKey: vapid.publicKey,
      smsAllowed: async (deviceId) => (await profileOf(deviceId))?.policies.smsWakeups === true,
      now: Date.now,
    }),
    records: [registrations],
    shareLimits: (state) => smsLimits.share(state),
    canWake,
    wake(deviceId, kind, n, preview) {
      if (!canWake(deviceId)) return false;
      if (n > 0) items.inc({ kind }, n);
      coalescer.note(deviceId, kind, n, preview);
      return true;
    },
    sweep,
    deviceBack: (deviceId) => coalescer.reset(deviceId),
    async settled() {
      await Promise.allSettled([...underWay]);
    },
    async close() {
      adminSub?.unsubscribe();
      coalescer.close();
      await stopSweeps();
      await Promise.allSettled([...underWay]);
      await Promise.allSettled(Object.values(senders).map((s) => s.close?.()));
    },
  };
}

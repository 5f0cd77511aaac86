/**
 * A node's alarms: every primary process runs one (node.ts), whatever its
 * roles, so that with every admin node down an edge or a transport still
 * raises admin_gone and delivers it. It holds:
 *   - the history: lmdb under the data directory on an in-process bus, the
 *     JetStream stream on a NATS bus (memory, with a warning, when the NATS
 *     servers have no JetStream);
 *   - the book (alarm-book.ts): raise/clear with de-duplication across nodes;
 *   - the cluster watch (node_gone, admin_gone, nats_server_gone);
 *   - the channels (webhook, e-mail, SMS) that the records this node wrote go to;
 *   - the event subject (Subjects.alarmEvent): takeover_done from any role,
 *     in any process, through reportTakeover().
 * backend_failing needs the stored log records: the admin role feeds them
 * (admin/index.ts) into backendFailing().
 */
import type { Logger } from 'pino';
import { Gauge, type Registry as PromRegistry } from 'prom-client';
import type { Bus, Subscription } from '../bus/bus.ts';
import { Subjects } from '../bus/bus.ts';
import type { AlarmSettings } from '../config.ts';
import { DestinationPolicy } from '../net/destination-policy.ts';
import type { Membership } from '../router/membership.ts';
import { AlarmBook } from './alarm-book.ts';
import { BackendFailingWatch, DEFAULT_BACKEND_FAILING } from './backend-failing.ts';
import { type AlarmChannel, ChannelDispatcher } from './channels/dispatcher.ts';
import { emailChannel } from './channels/email.ts';
import { type SmsLinkSettings, smsChannel } from './channels/sms.ts';
import { webhookChannel } from './channels/webhook.ts';
import { ClusterWatch } from './cluster-watch.ts';
import { type AlarmHistory, DEFAULT_RETENTION, MemoryAlarmHistory } from './history.ts';
import type { JetStreamAlarmHistory } from './jetstream-history.ts';
import { LmdbAlarmHistory } from './lmdb-history.ts';
import { ALARM_KINDS } from './alarm.ts';

export interface AlarmServiceOptions {
  nodeId: string;
  roles: readonly string[];
  bus: Bus;
  /** The bus is NATS (config bus is not "inproc"): JetStream history, server status. */
  nats: boolean;
  membership: Membership;
  /** Data directory: the lmdb history on an in-process bus. */
  dataDir: string;
  settings?: AlarmSettings | undefined;
  /** The transport's destinations (config transport.allowDestinations, MMGW_ALLOW_DESTINATIONS). */
  allowDestinations?: readonly string[] | undefined;
  allowPorts?: readonly number[] | undefined;
  /** The SMPP link of the SMS channel (config push.sms). */
  smsLink?: SmsLinkSettings | undefined;
  logger: Logger;
  metrics?: PromRegistry;
  /** How long to wait for JetStream at start before the history falls back to memory (default 15 s). */
  jetStreamWaitMs?: number;
  /** Replaces the history the bus decides (tests). */
  history?: AlarmHistory;
  now?: () => number;
}

export interface AlarmService {
  readonly book: AlarmBook;
  readonly cluster: ClusterWatch;
  readonly dispatcher: ChannelDispatcher;
  /** The watch the admin role feeds stored log records into (made on first call). */
  backendFailing(): BackendFailingWatch;
  close(): Promise<void>;
}

/** A role taking over another node's devices tells the operators (any process, any node). */
export interface TakeoverEvent {
  /** The node whose devices were taken. */
  fromNode: string;
  /** The node that took them. */
  byNode: string;
  devices: number;
  accounts?: number;
  /** Milliseconds from the node leaving to its devices being served again. */
  tookMs?: number;
}

/** Fire and forget: one alarm service of the cluster (a queue group) records and delivers it. */
export function reportTakeover(bus: Bus, event: TakeoverEvent): void {
  bus.publish(Subjects.alarmEvent, { kind: 'takeover_done', ...event });
}

const TOKEN = /^[A-Za-z0-9_-]{1,64}$/;

function takeoverFrom(x: unknown): TakeoverEvent | undefined {
  const e = x as Record<string, unknown> | null;
  if (e === null || typeof e !== 'object' || e.kind !== 'takeover_done') return undefined;
  if (typeof e.fromNode !== 'string' || !TOKEN.test(e.fromNode)) return undefined;
  if (typeof e.byNode !== 'string' || !TOKEN.test(e.byNode)) return undefined;
  const count = (v: unknown) => (typeof v === 'number' && Number.isInteger(v) && v >= 0 ? v : undefined);
  const devices = count(e.devices);
  if (devices === undefined) return undefined;
  const accounts = count(e.accounts);
  const tookMs = count(e.tookMs);
  return {
    fromNode: e.fromNode,
    byNode: e.byNode,
    devices,
    ...(accounts === undefined ? {} : { accounts }),
    ...(tookMs === undefined ? {} : { tookMs }),
  };
}

async function openHistory(options: AlarmServiceOptions): Promise<AlarmHistory> {
  if (options.history) return options.history;
  const retention = { maxRecords: options.settings?.history?.maxRecords ?? DEFAULT_RETENTION.maxRecords };
  if (!options.nats) return LmdbAlarmHistory.open(options.dataDir, retention);
  const { natsConnectionOf } = await import('../bus/nats.ts');
  const nc = natsConnectionOf(options.bus);
  if (!nc) return LmdbAlarmHistory.open(options.dataDir, retention);
  const { JetStreamAlarmHistory } = await import('./jetstream-history.ts');
  // A cluster starting together: JetStream may have no leader yet for a few seconds.
  const deadline = Date.now() + (options.jetStreamWaitMs ?? 15_000);
  for (;;) {
    try {
      return await JetStreamAlarmHistory.open(nc, {
        replicas: options.settings?.history?.replicas ?? 3,
        retention,
        logger: options.logger,
      });
    } catch (err) {
      const absent = /not enabled|no responders/i.test(
        `${(err as Error).message} ${String((err as Error).cause ?? '')}`,
      );
      if (!absent && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 500));
        continue;
      }
      options.logger.warn(
        { err },
        'alarm history in memory only: JetStream does not answer (NATS servers started without -js?)',
      );
      return new MemoryAlarmHistory(retention);
    }
  }
}

function channelsFrom(options: AlarmServiceOptions): AlarmChannel[] {
  const s = options.settings;
  if (!s?.webhook && !s?.email && !s?.sms) return [];
  const policy = new DestinationPolicy({
    allow: [...(options.allowDestinations ?? []), ...(s.allowDestinations ?? [])],
    extraPorts: options.allowPorts ?? [],
  });
  const out: AlarmChannel[] = [];
  if (s.webhook) out.push(webhookChannel(s.webhook, policy));
  if (s.email) {
    const e = s.email;
    out.push(
      emailChannel(
        {
          host: e.host,
          port: e.port,
          from: e.from,
          to: e.to,
          ...(e.secure === undefined ? {} : { secure: e.secure }),
          ...(e.user === undefined ? {} : { user: e.user }),
          ...(e.password === undefined ? {} : { password: e.password }),
          ...(e.allowInvalidCert === undefined ? {} : { allowInvalidCert: e.allowInvalidCert }),
          ...(e.timeoutMs === undefined ? {} : { timeoutMs: e.timeoutMs }),
        },
        policy,
      ),
    );
  }
  if (s.sms && options.smsLink) {
    const { to, minSeverity, maxPerHour, idleMs } = s.sms;
    const logger = options.logger.child({ component: 'alarms', channel: 'sms' });
    out.push(
      smsChannel(
        {
          to,
          ...(minSeverity === undefined ? {} : { minSeverity }),
          ...(maxPerHour === undefined ? {} : { maxPerHour }),
          ...(idleMs === undefined ? {} : { idleMs }),
        },
        options.smsLink,
        policy,
        { logger, ...(options.now ? { now: options.now } : {}) },
      ),
    );
  }
  return out;
}

export async function startAlarmService(options: AlarmServiceOptions): Promise<AlarmService> {
  const { bus, logger, nodeId } = options;
  const log = logger.child({ component: 'alarms' });
  const delivery = options.settings?.delivery;
  const dispatcher = new ChannelDispatcher({
    channels: channelsFrom(options),
    logger: log,
    ...(options.metrics ? { metrics: options.metrics } : {}),
    ...(delivery?.maxAttempts === undefined ? {} : { maxAttempts: delivery.maxAttempts }),
    ...(delivery?.baseDelayMs === undefined ? {} : { baseDelayMs: delivery.baseDelayMs }),
    ...(delivery?.maxDelayMs === undefined ? {} : { maxDelayMs: delivery.maxDelayMs }),
  });
  const history = await openHistory(options);
  const book = await AlarmBook.open({
    history,
    nodeId,
    logger: log,
    ...(options.now ? { now: options.now } : {}),
    onWritten: (record) => {
      log.warn({ alarm: record.id, state: record.state, severity: record.severity }, record.message);
      dispatcher.deliver(record);
    },
  });
  if (options.metrics) registerAlarmMetrics(options.metrics, book);
  const cluster = new ClusterWatch({
    book,
    membership: options.membership,
    bus,
    nodeId,
    roles: options.roles,
    ...(options.settings?.adminGoneAfterMs === undefined
      ? {}
      : { adminGoneAfterMs: options.settings.adminGoneAfterMs }),
    ...(options.now ? { now: options.now } : {}),
  });
  let stopNats: (() => void) | undefined;
  if (options.nats) {
    const { natsConnectionOf } = await import('../bus/nats.ts');
    const nc = natsConnectionOf(bus);
    if (nc) {
      const { watchNatsServers } = await import('./nats-status.ts');
      const peers = 'peers' in history ? (history as JetStreamAlarmHistory).peers.bind(history) : undefined;
      stopNats = watchNatsServers(nc, {
        onServer: (e) => cluster.natsServer(e),
        onConnection: (up) => cluster.busConnection(up),
        ...(peers ? { peers } : {}),
      });
    }
  }
  const events: Subscription = bus.subscribe(
    Subjects.alarmEvent,
    async (msg) => {
      const t = takeoverFrom(msg.data);
      if (!t) {
        log.warn({ subject: msg.subject }, 'malformed alarm event ignored');
        return;
      }
      await book.event({
        kind: 'takeover_done',
        subject: t.fromNode,
        severity: 'info',
        message: `node ${t.byNode} took over ${t.devices} devices${t.accounts === undefined ? '' : ` (${t.accounts} accounts)`} of node ${t.fromNode}${t.tookMs === undefined ? '' : ` in ${t.tookMs} ms`}`,
      });
    },
    { queue: 'mmgw.alarms' },
  );
  let backend: BackendFailingWatch | undefined;
  let sweep: NodeJS.Timeout | undefined;
  log.info({ history: history.backend, channels: dispatcher.channelNames }, 'alarms started');
  return {
    book,
    cluster,
    dispatcher,
    backendFailing() {
      if (!backend) {
        const t = options.settings?.backendFailing;
        backend = new BackendFailingWatch(
          book,
          {
            windowMs: t?.windowMs ?? DEFAULT_BACKEND_FAILING.windowMs,
            perDevice: t?.perDevice ?? DEFAULT_BACKEND_FAILING.perDevice,
            perPreset: t?.perPreset ?? DEFAULT_BACKEND_FAILING.perPreset,
          },
          options.now,
        );
        const watch = backend;
        sweep = setInterval(() => watch.sweep(), 1000);
        sweep.unref();
      }
      return backend;
    },
    async close() {
      clearInterval(sweep);
      events.unsubscribe();
      stopNats?.();
      cluster.close();
      await book.close();
      dispatcher.close();
      await history.close();
    },
  };
}

/**
 * mmgw_alarms_active{kind}: the alarms raised now, as this node's book knows
 * them (the shared history: every node sees the cluster's). Prometheus rules
 * read nats_server_gone and backend_failing here, which need the gateway's own
 * view (JetStream's replicas, the stored records). One book per registry.
 */
function registerAlarmMetrics(registry: PromRegistry, book: AlarmBook): void {
  if (registry.getSingleMetric('mmgw_alarms_active')) return;
  new Gauge({
    name: 'mmgw_alarms_active',
    help: 'Alarms raised now, by kind (node_gone, admin_gone, nats_server_gone, backend_failing).',
    labelNames: ['kind'],
    registers: [registry],
    collect() {
      const counts = new Map<string, number>(ALARM_KINDS.map((k) => [k, 0]));
      for (const a of book.list(true)) counts.set(a.kind, (counts.get(a.kind) ?? 0) + 1);
      for (const [kind, n] of counts) this.set({ kind }, n);
    },
  });
}

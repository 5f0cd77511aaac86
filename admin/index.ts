/**
 * The admin role: the device registry service on the bus, the records store
 * (what every node's Recorder sends on Subjects.records) with the audit log,
 * fed also by the registry's own audit entries (CLI changes, import jobs:
 * audit-relay.ts), the node monitor and alarms, and the REST API under
 * /api/v1 on the node's ops endpoint. The web UI (admin/ui) mounts beside it.
 */
import { EventEmitter } from 'node:events';
import { join } from 'node:path';
import type { Logger } from 'pino';
import {
  type AlarmService,
  type Bus,
  CredentialCipher,
  type DeviceAuthRecordV1,
  type DeviceLogRecord,
  importResultSealer,
  type Membership,
  type OpsServer,
  type RecordBatch,
  type Registry,
  RendezvousRouter,
  type Sealer,
  type SharedTable,
  MemoryAlarmHistory,
  startAlarmService,
  Subjects,
} from '../server/index.ts';
import { adminJwtKey, bootstrapAdmin } from './api/auth.ts';
import { sweepSpool } from './api/routes/imports.ts';
import { type AdminApi, createAdminApi } from './api/server.ts';
import { startAuditRelay } from './audit-relay.ts';
import { NodeMonitor } from './monitor.ts';
import { RecordsStore, type RetentionOptions } from './records-store.ts';
import { startRegistryService } from './registry-service.ts';

export { API_PREFIX, createAdminApi } from './api/server.ts';
export { openApiDocument } from './api/routes/index.ts';
export { NodeMonitor, type NodeView } from './monitor.ts';
export { RecordsStore } from './records-store.ts';
export { REGISTRY_QUEUE, type RegistryService, startRegistryService } from './registry-service.ts';

/** Queue group of the records writers: with several admin nodes each batch is stored once. */
export const RECORDS_QUEUE = 'mmgw.admin.records';
/** Every admin node hears what was stored (live tails, alarms), whichever node stored it. */
export const RECORDS_STORED_SUBJECT = 'mmgw.admin.records.stored';

export interface AdminRole {
  records?: RecordsStore;
  monitor?: NodeMonitor;
  close(): Promise<void>;
}

export interface AdminRoleOptions {
  bus: Bus;
  registry: Registry;
  logger: Logger;
  /** Data directory: records store and the admin token key live under it. Without it, only the registry service runs. */
  dataDir?: string;
  /** The node's ops endpoint, where /api/v1 mounts. */
  ops?: OpsServer;
  /** The node's membership (node monitor). */
  membership?: Membership;
  /** The node's alarms (node.ts starts them); absent: the admin keeps its own, in memory. */
  alarms?: AlarmService;
  retention?: RetentionOptions;
  /** Admin API settings (config `admin`). */
  api?: {
    tokenTtlSeconds?: number;
    loginFailuresPerUser?: number;
    loginFailuresPerAddress?: number;
    importMaxRows?: number;
    /** The monitor's last hour: a sample every this many ms (default 15 s). */
    monitorSampleMs?: number;
  };
  /** The admin user created on a first start, when none exists (config admin.firstAdminName/Password). */
  firstAdmin?: { name?: string | undefined; password?: string | undefined };
  /** Key that seals provisioned account passwords (config credentialsKey); absent: the key file. */
  credentialsKey?: string | undefined;
  /** Cluster mode: the shared device auth table, for devices another admin node added. */
  sharedDeviceAuth?: () => SharedTable<DeviceAuthRecordV1> | undefined;
}

/** Starts the admin role. The caller owns the registry (opens and closes it). */
export async function startAdminRole(options: AdminRoleOptions): Promise<AdminRole> {
  const { bus, registry } = options;
  const logger = options.logger.child({ role: 'admin' });
  const registryService = startRegistryService({
    bus,
    registry,
    logger,
    ...(options.sharedDeviceAuth ? { shared: options.sharedDeviceAuth } : {}),
  });
  if (options.dataDir === undefined) {
    logger.info('admin role started (registry service only)');
    return {
      async close() {
        registryService.close();
      },
    };
  }

  const records = await RecordsStore.open({
    dataDir: options.dataDir,
    logger,
    ...options.retention,
    operatorOf: (imei) => registry.getDevice(imei)?.operator,
  });
  // Audit entries the registry wrote itself (CLI changes, import jobs) go to the audit log from here.
  const relay = startAuditRelay({ registry, records, logger });
  const feed = new EventEmitter();
  feed.setMaxListeners(0);
  const onStoredLogs = (listener: (logs: DeviceLogRecord[]) => void) => {
    feed.on('logs', listener);
    return () => {
      feed.off('logs', listener);
    };
  };

  const recordsSub = bus.subscribe(
    Subjects.records,
    async (msg) => {
      const batch = msg.data as RecordBatch;
      if (batch === null || typeof batch !== 'object') return { stored: 0 };
      await records.write(batch);
      const logs = Array.isArray(batch.logs) ? batch.logs : [];
      if (logs.length > 0) bus.publish(RECORDS_STORED_SUBJECT, { logs });
      return { stored: logs.length + (Array.isArray(batch.usage) ? batch.usage.length : 0) };
    },
    { queue: RECORDS_QUEUE },
  );

  let monitor: NodeMonitor | undefined;
  let ownAlarms: AlarmService | undefined;
  const membership = options.membership;
  const alarms =
    options.alarms ??
    (membership
      ? (ownAlarms = await startAlarmService({
          nodeId: 'admin',
          roles: ['admin'],
          bus,
          nats: false,
          membership,
          dataDir: options.dataDir,
          logger,
          history: new MemoryAlarmHistory(),
        }))
      : undefined);
  if (membership && alarms) {
    const sampleMs = options.api?.monitorSampleMs;
    monitor = new NodeMonitor(
      membership,
      alarms.book,
      sampleMs === undefined ? {} : { historyIntervalMs: sampleMs },
    );
  }
  const backendFailing = alarms?.backendFailing();
  const storedSub = bus.subscribe(RECORDS_STORED_SUBJECT, (msg) => {
    const logs = (msg.data as { logs?: unknown } | null)?.logs;
    if (!Array.isArray(logs)) return;
    backendFailing?.observe(logs);
    monitor?.history.observe(logs);
    feed.emit('logs', logs);
  });

  let api: AdminApi | undefined;
  // The device's transport node as the edges pick it: the one that holds its wake-up channels.
  const transports = membership ? new RendezvousRouter(membership) : undefined;
  if (options.ops && monitor) {
    await bootstrapAdmin(
      registry,
      { MMGW_ADMIN_NAME: options.firstAdmin?.name, MMGW_ADMIN_PASSWORD: options.firstAdmin?.password },
      logger,
    );
    // Provisioned account passwords are sealed with the transport's credentials key: the same
    // MMGW_CREDENTIALS_KEY (or the same <data>/keys/credentials.key) on admin and transport nodes.
    let cipher: CredentialCipher | undefined;
    const dataDir = options.dataDir;
    const sealSecret = (secret: string, context: string) =>
      (cipher ??= CredentialCipher.open({ dataDir, key: options.credentialsKey, logger })).encrypt(
        secret,
        context,
      );
    let sealer: Sealer | undefined;
    const spoolDir = join(dataDir, 'tmp');
    await sweepSpool(spoolDir);
    api = createAdminApi({
      registry,
      records,
      monitor,
      bus,
      ...(transports ? { transportOf: (id: string) => transports.pick(id) } : {}),
      logger,
      jwtKey: adminJwtKey(options.dataDir),
      ...(options.api?.tokenTtlSeconds === undefined ? {} : { tokenTtlSeconds: options.api.tokenTtlSeconds }),
      loginLimits: {
        perUser: options.api?.loginFailuresPerUser ?? 5,
        perAddress: options.api?.loginFailuresPerAddress ?? 30,
        windowMs: 15 * 60_000,
      },
      onStoredLogs,
      sealSecret,
      importSealer: () => (sealer ??= importResultSealer({ dataDir, key: options.credentialsKey, logger })),
      ...(options.api?.importMaxRows === undefined ? {} : { importMaxRows: options.api.importMaxRows }),
      spoolDir,
      drainAudit: relay.drain,
    });
    options.ops.use(api.handler);
  }
  logger.info({ api: Boolean(api) }, 'admin role started');
  return {
    records,
    ...(monitor ? { monitor } : {}),
    async close() {
      api?.close();
      transports?.close();
      await relay.close();
      storedSub.unsubscribe();
      recordsSub.unsubscribe();
      monitor?.close();
      await ownAlarms?.close();
      registryService.close();
      await records.close();
    },
  };
}

/**
 * The admin REST API under /api/v1, mounted on the node's ops endpoint
 * (node:http): the route table of routes/ (one file per resource) behind the
 * router (router.ts: 404, 401, 403, then input validation, one error
 * handler). Every change goes to the audit log with the record before and
 * after.
 */
import type { ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import {
  type Bus,
  DEFAULT_IMPORT_MAX_ROWS,
  type DeviceLogRecord,
  type OpsHandler,
  type Registry,
  type Sealer,
} from '../../server/index.ts';
import type { NodeMonitor } from '../monitor.ts';
import type { RecordsStore } from '../records-store.ts';
import { bearerPrincipal, LoginLimiter, TokenIssuer } from './auth.ts';
import type { ApiServices } from './context.ts';
import { createRouter } from './router.ts';
import { API_ROUTES } from './routes/index.ts';

export const API_PREFIX = '/api/v1';

export interface AdminApiOptions {
  registry: Registry;
  records: RecordsStore;
  monitor: NodeMonitor;
  bus: Bus;
  /** The transport node serving a device, as the edge picks it; absent: none (the wake-up channel routes answer 503). */
  transportOf?: (deviceId: string) => string | undefined;
  logger: Logger;
  jwtKey: string;
  /** Token lifetime. Default 12 h. */
  tokenTtlSeconds?: number;
  /** Subscribes to the live feed of stored log records (the SSE tail). */
  onStoredLogs(listener: (logs: DeviceLogRecord[]) => void): () => void;
  now?: () => number;
  loginLimits?: { perUser: number; perAddress: number; windowMs: number };
  /**
   * Seals a provisioned account's password with the credentials key the
   * transport nodes open it with (CredentialCipher.encrypt). Absent: the
   * /devices/{imei}/accounts routes answer 503.
   */
  sealSecret?: (secret: string, context: string) => string;
  /** Seals the one-time secrets of import jobs (made on first use). Absent: imports that write answer 503. */
  importSealer?: () => Sealer;
  /** Rows an import may have. Default DEFAULT_IMPORT_MAX_ROWS (1,000,000). */
  importMaxRows?: number;
  /** Where an import body is kept between its two passes; the data directory's tmp. */
  spoolDir?: string;
  /** Relays the registry's own audit entries to the audit log (admin/audit-relay.ts). */
  drainAudit?: () => Promise<unknown>;
}

export interface AdminApi {
  handler: OpsHandler;
  close(): void;
}

export function createAdminApi(o: AdminApiOptions): AdminApi {
  const now = o.now ?? Date.now;
  const tokens = new TokenIssuer(o.jwtKey, o.tokenTtlSeconds ?? 12 * 3600, now);
  const streams = new Set<ServerResponse>();

  const openStream = (res: ServerResponse, onClose: () => void) => {
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    res.write(': stream open\n\n');
    streams.add(res);
    const ping = setInterval(() => res.write(': ping\n\n'), 15_000);
    const done = () => {
      clearInterval(ping);
      streams.delete(res);
      onClose();
    };
    res.on('close', done);
  };

  const services: ApiServices = {
    registry: o.registry,
    records: o.records,
    monitor: o.monitor,
    bus: o.bus,
    transportOf: o.transportOf ?? (() => undefined),
    logger: o.logger,
    now,
    tokens,
    limiter: new LoginLimiter(o.loginLimits, now),
    sealSecret: o.sealSecret,
    importSealer: o.importSealer,
    importMaxRows: o.importMaxRows ?? DEFAULT_IMPORT_MAX_ROWS,
    spoolDir: o.spoolDir,
    drainAudit: o.drainAudit ?? (async () => 0),
    onStoredLogs: o.onStoredLogs,
    openStream,
  };

  const handler = createRouter(API_ROUTES, {
    prefix: API_PREFIX,
    services,
    authenticate: (req, url, how) => bearerPrincipal(req, url, tokens, o.registry, how),
    logger: o.logger,
  });

  return {
    handler,
    close() {
      for (const res of streams) res.end();
      streams.clear();
    },
  };
}

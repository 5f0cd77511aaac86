/**
 * What an edge needs to authenticate a device, shared over the cluster: one
 * record per device (status, operator, service profile, secret hash) in the
 * shared-state table `device_auth` (JetStream KV in cluster mode).
 *
 * The admin role publishes it from its registry (DeviceAuthPublisher: every
 * committed device change, and a reconciliation at start, since a change
 * committed just before a crash may not have been published); edges read
 * their watched local copy (sharedDeviceDirectory). So Hello and Resume are
 * answered on the edge itself, also while every admin node is down, and a
 * device added through one admin node authenticates through any edge.
 *
 * Publishing is idempotent and retried: each round reads the registry's
 * current record and compare-and-sets it into the table, so a retry after a
 * timeout, a second admin publishing the same device, or a change racing the
 * publisher all end with the registry's latest state.
 */
import type { Logger } from 'pino';
import { GatewayError } from '../../device-protocol/errors.ts';
import type { DeviceDirectory, DeviceInfo } from '../bus/bus.ts';
import type { DeviceRecordV1, DeviceStatus } from './records.ts';
import { verifyDeviceSecret } from './secrets.ts';
import {
  attemptWorthWarning,
  modify,
  openInBackground,
  type SharedState,
  type SharedTable,
} from './shared/table.ts';

export const DEVICE_AUTH_TABLE = 'device_auth';
export const DEVICE_AUTH_RECORD_VERSION = 1;
/** A presented secret longer than this cannot be ours (ours are 43 chars); refuse before hashing. */
const SECRET_MAX = 256;

export interface DeviceAuthRecordV1 {
  v: 1;
  imei: string;
  operator: string;
  profile?: string;
  status: DeviceStatus;
  /** base64url SHA-256 of the device secret (as in the registry). */
  secretHash: string;
  /** The key epoch of DeviceInfo, computed by the publisher so every edge agrees. */
  keyEpoch: string;
  /**
   * The admin node that published it. Optional (records before it have none):
   * a periodic reconciliation leaves another node's record alone, so two admin
   * nodes whose registries disagree about a device do not overwrite each other
   * every round; an operator's change through any node still wins.
   */
  by?: string;
  /** The heartbeat the device's service or operator profile sets (ms); absent: the edge's own. */
  heartbeatMs?: number;
}

/** Checks a record another node wrote; a newer version only adds fields, so known ones are read. */
export function readDeviceAuthRecord(raw: unknown): DeviceAuthRecordV1 {
  const r = raw as Partial<Record<keyof DeviceAuthRecordV1, unknown>> | null;
  if (r === null || typeof r !== 'object' || Array.isArray(r)) {
    throw new GatewayError('registry.bad_record', 'device auth record is not an object');
  }
  if (typeof r.v !== 'number' || r.v < 1)
    throw new GatewayError('registry.bad_record', 'device auth record has no version');
  if (
    typeof r.imei !== 'string' ||
    typeof r.operator !== 'string' ||
    typeof r.secretHash !== 'string' ||
    typeof r.keyEpoch !== 'string' ||
    (r.status !== 'enabled' && r.status !== 'disabled') ||
    (r.profile !== undefined && typeof r.profile !== 'string') ||
    (r.by !== undefined && typeof r.by !== 'string') ||
    (r.heartbeatMs !== undefined && (typeof r.heartbeatMs !== 'number' || !(r.heartbeatMs > 0)))
  ) {
    throw new GatewayError('registry.bad_record', 'device auth record lacks a field or has a bad one');
  }
  return r as DeviceAuthRecordV1;
}

export function deviceAuthRecord(
  r: DeviceRecordV1,
  keyEpoch: string,
  heartbeatMs?: number,
): DeviceAuthRecordV1 {
  const out: DeviceAuthRecordV1 = {
    v: DEVICE_AUTH_RECORD_VERSION,
    imei: r.imei,
    operator: r.operator,
    status: r.status,
    secretHash: r.secretHash,
    keyEpoch,
  };
  if (r.profile !== undefined) out.profile = r.profile;
  if (heartbeatMs !== undefined) out.heartbeatMs = heartbeatMs;
  return out;
}

/** The fields the registry holds (keyEpoch follows from secretHash, so comparing needs no hashing). */
export type DeviceAuthFields = Omit<DeviceAuthRecordV1, 'keyEpoch' | 'by'>;

/** Same device state (who published it does not count). */
function sameRecord(a: DeviceAuthFields, b: DeviceAuthFields): boolean {
  return (
    a.v === b.v &&
    a.imei === b.imei &&
    a.operator === b.operator &&
    a.profile === b.profile &&
    a.status === b.status &&
    a.secretHash === b.secretHash &&
    a.heartbeatMs === b.heartbeatMs
  );
}

function info(r: DeviceAuthRecordV1): DeviceInfo {
  const out: DeviceInfo = { imei: r.imei, operator: r.operator, status: r.status, keyEpoch: r.keyEpoch };
  if (r.profile !== undefined) out.profile = r.profile;
  if (r.heartbeatMs !== undefined) out.heartbeatMs = r.heartbeatMs;
  return out;
}

/** The record of an IMEI as presented (untrusted: any type, any length). */
function find(table: SharedTable<DeviceAuthRecordV1>, imei: unknown): DeviceAuthRecordV1 | undefined {
  return typeof imei === 'string' && imei.length > 0 && imei.length <= 32
    ? table.get(imei)?.value
    : undefined;
}

/** Same answers, in the same order, as Registry.authenticate (auth.unknown_device, auth.bad_secret, auth.disabled). */
export function authenticateFrom(
  table: SharedTable<DeviceAuthRecordV1>,
  imei: string,
  secret: string,
): DeviceInfo {
  const r = find(table, imei);
  if (!r) throw new GatewayError('auth.unknown_device', `no device with IMEI ${String(imei).slice(0, 32)}`);
  if (typeof secret !== 'string' || secret.length > SECRET_MAX || !verifyDeviceSecret(secret, r.secretHash)) {
    throw new GatewayError('auth.bad_secret');
  }
  if (r.status !== 'enabled') throw new GatewayError('auth.disabled');
  return info(r);
}

/** Same answers as Registry.lookup. */
export function lookupFrom(table: SharedTable<DeviceAuthRecordV1>, imei: string): DeviceInfo {
  const r = find(table, imei);
  if (!r) throw new GatewayError('auth.unknown_device');
  if (r.status !== 'enabled') throw new GatewayError('auth.disabled');
  return info(r);
}

export interface WatchedDirectoryOptions {
  /** Opens the table (connects to the shared state); retried with backoff until it succeeds. */
  open(): Promise<SharedTable<DeviceAuthRecordV1>>;
  /**
   * Asked for devices the copy does not have (yet): the copy is still loading,
   * or the admin that added the device runs an older release that does not
   * publish. The bus directory (server/store/directory.ts).
   */
  fallback: DeviceDirectory;
  logger?: Logger;
  /** Longest pause between attempts to open (default 30 s). */
  maxRetryMs?: number;
}

export interface WatchedDirectory extends DeviceDirectory {
  /** Whether the local copy is loaded (answers come from it). */
  ready(): boolean;
  close(): void;
}

/**
 * The edge's DeviceDirectory: answers from the watched local copy of
 * `device_auth`, else from the fallback. The copy opens in the background, so
 * an edge starts (and serves through the fallback) while NATS or JetStream is
 * not there yet.
 */
export function sharedDeviceDirectory(options: WatchedDirectoryOptions): WatchedDirectory {
  let table: SharedTable<DeviceAuthRecordV1> | undefined;
  const opening = openInBackground(options.open, {
    opened(t) {
      table = t;
      options.logger?.info({ devices: t.size() }, 'device auth: answering from the shared copy');
    },
    failed(err, attempt) {
      if (attemptWorthWarning(attempt))
        options.logger?.warn(
          { err, attempt },
          'device auth: shared copy not available yet; asking the admin',
        );
    },
    ...(options.maxRetryMs !== undefined ? { maxRetryMs: options.maxRetryMs } : {}),
  });
  return {
    async authenticate(imei, secret) {
      if (table && find(table, imei)) return authenticateFrom(table, imei, secret);
      return options.fallback.authenticate(imei, secret);
    },
    async lookup(imei) {
      if (table && find(table, imei)) return lookupFrom(table, imei);
      return options.fallback.lookup(imei);
    },
    ready: () => table !== undefined,
    close: () => opening.cancel(),
  };
}

/** What the publisher reads from the registry. */
export interface DeviceAuthSource {
  /** The device's auth record now, or undefined when it is gone. */
  deviceAuth(imei: string): DeviceAuthRecordV1 | undefined;
  /** Every device's auth fields (the reconciliation). */
  allDeviceAuth(): Iterable<DeviceAuthFields>;
}

/**
 * Publishes the registry's devices into `device_auth`: whatever IMEIs it is
 * told about, one at a time, each the registry's state at that moment; a
 * failed round (NATS unreachable) is retried with backoff, never dropped.
 */
export class DeviceAuthPublisher {
  /** IMEI → why: a change made here (always published) or a reconciliation (leaves another node's record). */
  private readonly pending = new Map<string, 'change' | 'reconcile'>();
  private running: Promise<void> | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private retryMs = 250;
  private stopped = false;

  constructor(
    private readonly source: DeviceAuthSource,
    private readonly table: SharedTable<DeviceAuthRecordV1>,
    private readonly options: { logger?: Logger; origin?: string } = {},
  ) {}

  /** Queues every device the registry holds whose shared record differs (or is missing). */
  reconcile(): void {
    for (const record of this.source.allDeviceAuth()) {
      const shared = this.table.get(record.imei)?.value;
      if ((!shared || !sameRecord(shared, record)) && !this.pending.has(record.imei)) {
        this.pending.set(record.imei, 'reconcile');
      }
    }
    this.kick();
  }

  changed(imeis: Iterable<string>): void {
    for (const imei of imeis) this.pending.set(imei, 'change');
    this.kick();
  }

  /** Resolves once everything queued so far is published (tests, shutdown). */
  async flushed(): Promise<void> {
    while (this.running) await this.running;
  }

  pendingCount(): number {
    return this.pending.size;
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.retryTimer);
  }

  private kick(): void {
    if (this.running || this.retryTimer || this.stopped || this.pending.size === 0) return;
    this.running = this.drain().finally(() => {
      this.running = undefined;
    });
  }

  private async drain(): Promise<void> {
    while (this.pending.size > 0 && !this.stopped) {
      const [imei, why] = this.pending.entries().next().value as [string, 'change' | 'reconcile'];
      this.pending.delete(imei);
      try {
        await this.publishOne(imei, why);
        this.retryMs = 250;
      } catch (err) {
        if (!this.pending.has(imei)) this.pending.set(imei, why);
        this.options.logger?.warn(
          { err, imei, pending: this.pending.size },
          'device auth: publishing failed; retrying',
        );
        this.retryTimer = setTimeout(() => {
          this.retryTimer = undefined;
          this.kick();
        }, this.retryMs);
        this.retryTimer.unref();
        this.retryMs = Math.min(this.retryMs * 2, 10_000);
        return;
      }
    }
  }

  private async publishOne(imei: string, why: 'change' | 'reconcile'): Promise<void> {
    const { origin } = this.options;
    await modify(this.table, imei, (current) => {
      const now = this.source.deviceAuth(imei);
      if (!now) return current && why === 'change' ? null : undefined;
      if (current && sameRecord(current.value, now)) return undefined;
      const theirs = current?.value.by !== undefined && current.value.by !== origin;
      if (why === 'reconcile' && theirs) return undefined;
      return origin === undefined ? now : { ...now, by: origin };
    });
  }
}

export interface DeviceAuthSharing {
  /** The shared table once open (the registry service answers from it for devices it lacks). */
  table(): SharedTable<DeviceAuthRecordV1> | undefined;
  publisher(): DeviceAuthPublisher | undefined;
  stop(): void;
}

/**
 * The admin side: opens `device_auth` in the background, then publishes every
 * device change of `registry` into it and reconciles once.
 */
export function startDeviceAuthSharing(deps: {
  registry: DeviceAuthSource & { onDevicesChanged(listener: (imeis: string[]) => void): () => void };
  open(): Promise<SharedTable<DeviceAuthRecordV1>>;
  logger?: Logger;
  /** This admin node's id, written into what it publishes. */
  origin?: string;
  /**
   * How often the whole registry is compared with the table (default 30 s): the
   * `mmgw device` CLI writes the registry from another process, whose changes
   * this process is not told about. Comparing is local (no round trip).
   */
  reconcileMs?: number;
}): DeviceAuthSharing {
  const { registry, logger } = deps;
  let reconciler: NodeJS.Timeout | undefined;
  let table: SharedTable<DeviceAuthRecordV1> | undefined;
  let publisher: DeviceAuthPublisher | undefined;
  // Changes made before the table opened are covered by the reconciliation that follows the open.
  let unsubscribe: (() => void) | undefined;
  const opening = openInBackground(deps.open, {
    opened(t) {
      table = t;
      publisher = new DeviceAuthPublisher(registry, t, {
        ...(logger ? { logger } : {}),
        ...(deps.origin !== undefined ? { origin: deps.origin } : {}),
      });
      const p = publisher;
      unsubscribe = registry.onDevicesChanged((imeis) => p.changed(imeis));
      p.reconcile();
      logger?.info({ pending: p.pendingCount() }, 'device auth: publishing the registry to the shared state');
      reconciler = setInterval(() => p.reconcile(), deps.reconcileMs ?? 30_000);
      reconciler.unref();
    },
    failed(err, attempt) {
      if (attemptWorthWarning(attempt))
        logger?.warn({ err, attempt }, 'device auth: shared state not available yet; edges ask this admin');
    },
  });
  return {
    table: () => table,
    publisher: () => publisher,
    stop() {
      opening.cancel();
      clearInterval(reconciler);
      unsubscribe?.();
      publisher?.stop();
    },
  };
}

/** Opens `device_auth` on a shared state, with its reader and a log line per unreadable record. */
export function openDeviceAuthTable(
  state: SharedState,
  logger?: Logger,
): Promise<SharedTable<DeviceAuthRecordV1>> {
  return state.table<DeviceAuthRecordV1>(DEVICE_AUTH_TABLE, {
    read: readDeviceAuthRecord,
    onBadRecord: (key, err) => logger?.warn({ err, key }, 'device auth: unreadable shared record left out'),
  });
}

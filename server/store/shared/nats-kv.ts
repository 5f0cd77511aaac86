/**
 * The shared-state interface on NATS JetStream KV: one bucket per table
 * (`mmgw_<table>`, history 1, `replicas` copies over the cluster's servers),
 * keys encoded by kv-keys.ts, values JSON.
 *
 * Each table keeps a local copy of its bucket, loaded by a watch when the
 * table opens and kept current by the same watch: get/list never leave the
 * process, and keep answering (with what was last seen) while every NATS
 * server is unreachable. The client reconnects by itself and the watch
 * resumes after the last revision it saw. Writes are JetStream KV
 * create / update-at-revision / delete-at-revision, i.e. compare-and-set on
 * one key; the local copy applies a write as soon as the server acknowledges
 * it, so a caller reads its own writes.
 *
 * A write that times out (a server was killed, no quorum yet) is reported as
 * registry.unavailable; it may still have been stored, so callers retry
 * idempotently (modify() in table.ts re-reads and decides again).
 */
import { Kvm, type KV, type KvWatchEntry } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { GatewayError } from '../../../device-protocol/errors.ts';
import { decodeKvKey, encodeKvKey } from './kv-keys.ts';
import {
  assertKey,
  assertTableName,
  conflict,
  type ListOptions,
  rangeOf,
  type SharedChange,
  type SharedEntry,
  type SharedState,
  type SharedTable,
  type TableOptions,
  take,
} from './table.ts';

export interface NatsKvOptions {
  servers: string | string[];
  /** Copies of every bucket: 3 on a 3-server cluster, 1 on a single server. */
  replicas: number;
  /** Connection name shown by the server: the node id. */
  name?: string;
  logger?: Logger;
  /** Give up the first connect after this long (default 10 s); later reconnects never give up. */
  connectTimeoutMs?: number;
  /** How long a table may take to load its copy when it opens (default 30 s). */
  loadTimeoutMs?: number;
}

/** How long caughtUp() waits for the watch to reach the bucket's last revision. */
const CATCH_UP_TIMEOUT_MS = 5000;

/** How often a table checks that its watch keeps up with the bucket. */
const HEALTH_CHECK_MS = 5000;

/** JetStream's "wrong last sequence" (and its variant): the key exists (create) or moved on (update, delete). */
const WRONG_LAST_SEQUENCE = new Set([10071, 10164]);

export class NatsKvSharedState implements SharedState {
  readonly kind = 'nats-kv' as const;
  private readonly kvm: Kvm;
  private readonly tables = new Map<string, Promise<KvTable<unknown>>>();
  private closing: Promise<void> | undefined;

  private constructor(
    private readonly nc: NatsConnection,
    private readonly options: NatsKvOptions,
  ) {
    this.kvm = new Kvm(nc);
  }

  static async connect(options: NatsKvOptions): Promise<NatsKvSharedState> {
    if (!Number.isInteger(options.replicas) || options.replicas < 1 || options.replicas > 5) {
      throw new GatewayError('config.invalid', 'shared state replicas: 1-5', { field: 'replicas' });
    }
    let nc: NatsConnection;
    try {
      nc = await connect({
        servers: options.servers,
        ...(options.name ? { name: `${options.name}-state` } : {}),
        maxReconnectAttempts: -1,
        reconnectTimeWait: 250,
        timeout: options.connectTimeoutMs ?? 10_000,
      });
    } catch (err) {
      throw new GatewayError(
        'registry.unavailable',
        `cannot reach NATS for the shared state: ${String(err)}`,
        {
          cause: err,
          retryable: true,
        },
      );
    }
    const version = nc.info?.version;
    if (options.replicas > 1 && version !== undefined && !clusteredCasExact(version)) {
      options.logger?.warn(
        { version },
        'nats-server before 2.9.21: two compare-and-set writes in flight at once on a replicated bucket may both be stored (nats-io/nats-server#4320); upgrade the NATS servers',
      );
    }
    const state = new NatsKvSharedState(nc, options);
    state.followReconnects();
    return state;
  }

  /** After a reconnect every table restarts its watch from the last revision it saw. */
  private followReconnects(): void {
    void (async () => {
      for await (const s of this.nc.status()) {
        if (s.type !== 'reconnect') continue;
        this.options.logger?.info({ server: s.server }, 'shared state: reconnected; restarting watches');
        for (const opening of this.tables.values()) {
          opening.then((t) => t.restart()).catch(() => {});
        }
      }
    })();
  }

  table<T>(name: string, options: TableOptions<T>): Promise<SharedTable<T>> {
    try {
      assertTableName(name);
    } catch (err) {
      return Promise.reject(err);
    }
    let opening = this.tables.get(name);
    if (!opening) {
      opening = this.open(name, options as TableOptions<unknown>);
      this.tables.set(name, opening);
      opening.catch(() => this.tables.delete(name));
    }
    return opening as unknown as Promise<SharedTable<T>>;
  }

  private async open(name: string, options: TableOptions<unknown>): Promise<KvTable<unknown>> {
    let kv: KV;
    try {
      // create() binds to the bucket when it exists with the same settings.
      kv = await this.kvm.create(`mmgw_${name}`, { replicas: this.options.replicas, history: 1 });
    } catch (err) {
      const hint = jetStreamMissing(err)
        ? ' (cluster state needs JetStream: start every nats-server with -js, a server_name and a store_dir)'
        : '';
      throw unavailable(`cannot open KV bucket mmgw_${name}${hint}`, err);
    }
    const table = new KvTable(name, kv, options, this.options.logger);
    await table.load(this.options.loadTimeoutMs ?? 30_000);
    return table;
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      for (const opening of this.tables.values()) {
        try {
          (await opening).stop();
        } catch {
          // never opened
        }
      }
      await this.nc.close();
    })();
    return this.closing;
  }
}

/** The NATS servers run without JetStream (a setting, not an outage: waiting would not help). */
export function jetStreamMissing(err: unknown): boolean {
  return /jetstream (is )?not enabled/i.test((err as Error)?.message ?? '');
}

/**
 * Is compare-and-set exact on a replicated bucket of this nats-server
 * version? Before 2.9.21 a clustered stream checks the expected last
 * subject sequence before the write is replicated, not as part of it, so two
 * writes in flight at once may both be stored (nats-io/nats-server#4320,
 * fixed by #4319): both writers are told they won, and the later one stays.
 */
export function clusteredCasExact(version: string): boolean {
  const m = /^v?(\d+)\.(\d+)\.(\d+)/.exec(version.trim());
  if (!m) return false;
  const [major, minor, patch] = m.slice(1).map(Number) as [number, number, number];
  return major > 2 || (major === 2 && (minor > 9 || (minor === 9 && patch >= 21)));
}

/** Resolves once `done()` holds (checked every 10 ms), or rejects with registry.unavailable after `timeoutMs`. */
async function eventuallyReached(done: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new GatewayError('registry.unavailable', `${what} in ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function unavailable(what: string, err: unknown): GatewayError {
  if (err instanceof GatewayError) return err;
  const message = (err as Error)?.message ?? String(err);
  return new GatewayError('registry.unavailable', `${what}: ${message}`, { cause: err, retryable: true });
}

function isWrongLastSequence(err: unknown): boolean {
  const e = err as { code?: unknown; api_error?: { err_code?: unknown }; message?: unknown } | null;
  return (
    WRONG_LAST_SEQUENCE.has(e?.api_error?.err_code as number) ||
    WRONG_LAST_SEQUENCE.has(e?.code as number) ||
    (typeof e?.message === 'string' && /wrong last sequence/i.test(e.message))
  );
}

class KvTable<T> implements SharedTable<T> {
  private readonly copy = new Map<string, SharedEntry<T>>();
  /** Keys removed here whose delete marker the watch has not brought yet: PUTs below the revision are stale. */
  private readonly removedAt = new Map<string, number>();
  private sorted: string[] | undefined;
  private readonly listeners = new Set<(change: SharedChange<T>) => void>();
  private watcher: { stop(): void } | undefined;
  private stopped = false;
  /** The highest revision the watch delivered: a restarted watch resumes after it. */
  private highWater = 0;
  /** Bumped by every (re)start: a superseded watch loop ends quietly. */
  private generation = 0;
  private restartTimer: NodeJS.Timeout | undefined;
  private health: NodeJS.Timeout | undefined;
  /** A revision the bucket had at the last health check that the watch had not reached. */
  private behindAt: number | undefined;

  constructor(
    readonly name: string,
    private readonly kv: KV,
    private readonly options: TableOptions<T>,
    private readonly logger: Logger | undefined,
  ) {}

  /**
   * Starts the watch and resolves once the bucket's current values are in the
   * copy: with history 1, the bucket's last message is the last value of its
   * key, so the watch delivers it, and reaching its revision means every key
   * before it was delivered too.
   */
  async load(timeoutMs: number): Promise<void> {
    let lastSeq: number;
    try {
      lastSeq = await this.lastRevision();
      await this.startWatch();
    } catch (err) {
      this.stop();
      throw unavailable(`cannot watch ${this.name}`, err);
    }
    try {
      await eventuallyReached(() => this.highWater >= lastSeq, timeoutMs, `${this.name}: copy not loaded`);
    } catch (err) {
      this.stop();
      throw err;
    }
    this.health = setInterval(() => void this.checkHealth(), HEALTH_CHECK_MS);
    this.health.unref();
  }

  /** Watches from after the last revision seen; the loop restarts it if it ends while the table is open. */
  private async startWatch(): Promise<void> {
    const generation = ++this.generation;
    const iterator = await this.kv.watch({
      key: '>',
      ...(this.highWater > 0 ? { resumeFromRevision: this.highWater + 1 } : {}),
    });
    if (this.stopped || generation !== this.generation) {
      iterator.stop();
      return;
    }
    this.watcher = iterator;
    void (async () => {
      try {
        for await (const e of iterator) {
          if (generation !== this.generation) break;
          this.fromWatch(e);
          if (e.revision > this.highWater) this.highWater = e.revision;
        }
      } catch (err) {
        if (!this.stopped)
          this.logger?.warn({ err, table: this.name }, 'shared-state watch failed; restarting it');
      }
      if (!this.stopped && generation === this.generation) this.restartLater();
    })();
  }

  /**
   * A new watch from the last revision seen: after a reconnect (the watch's
   * consumer may have lived on the server that went away), or when the watch
   * fell behind the bucket (its consumer stalled; the client itself only
   * notices after two missed 30 s heartbeats).
   */
  restart(): void {
    if (this.stopped) return;
    this.generation++;
    this.watcher?.stop();
    this.watcher = undefined;
    this.restartLater(0);
  }

  private restartLater(delayMs = 500): void {
    clearTimeout(this.restartTimer);
    this.restartTimer = setTimeout(() => {
      if (this.stopped) return;
      this.startWatch().catch((err: unknown) => {
        this.logger?.debug({ err, table: this.name }, 'shared-state watch not restarted yet');
        this.restartLater(Math.min(Math.max(delayMs * 2, 500), 5000));
      });
    }, delayMs);
    this.restartTimer.unref();
  }

  private async checkHealth(): Promise<void> {
    let last: number;
    try {
      last = await this.lastRevision();
    } catch {
      return; // unreachable: the copy keeps answering, and the reconnect restarts the watch
    }
    if (this.behindAt !== undefined && this.highWater < this.behindAt) {
      this.logger?.info(
        { table: this.name, seen: this.highWater, stored: last },
        'shared-state watch stalled; restarting it',
      );
      this.behindAt = undefined;
      this.restart();
      return;
    }
    this.behindAt = last > this.highWater ? last : undefined;
  }

  private async lastRevision(): Promise<number> {
    return (await this.kv.status()).streamInfo.state.last_seq;
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.health);
    clearTimeout(this.restartTimer);
    this.watcher?.stop();
  }

  get(key: string): SharedEntry<T> | undefined {
    return this.copy.get(key);
  }

  /** One ask of the bucket's last revision for every caller that came while the one before ran. */
  private nextCatchUp: Promise<void> | undefined;
  private catchingUp: Promise<void> | undefined;

  caughtUp(): Promise<void> {
    // A check already running may have read the last revision before this call: wait for the next one.
    this.nextCatchUp ??= (async () => {
      await this.catchingUp?.catch(() => {});
      this.nextCatchUp = undefined;
      const run = (async () => {
        let last: number;
        try {
          last = await this.lastRevision();
        } catch (err) {
          throw unavailable(`${this.name}: cannot ask the bucket's last revision`, err);
        }
        await eventuallyReached(
          () => this.highWater >= last,
          CATCH_UP_TIMEOUT_MS,
          `${this.name}: copy behind`,
        );
      })();
      this.catchingUp = run;
      await run;
    })();
    return this.nextCatchUp;
  }

  list(options: ListOptions = {}): SharedEntry<T>[] {
    return take(this.entries(options), options.limit);
  }

  entries(options: Omit<ListOptions, 'limit'> = {}): Iterable<SharedEntry<T>> {
    this.sorted ??= [...this.copy.keys()].sort();
    return rangeOf(this.sorted, (k) => this.copy.get(k), options);
  }

  size(): number {
    return this.copy.size;
  }

  async create(key: string, value: T): Promise<SharedEntry<T>> {
    assertKey(key);
    let revision: number;
    try {
      revision = await this.kv.create(encodeKvKey(key), JSON.stringify(value));
    } catch (err) {
      if (isWrongLastSequence(err)) throw conflict(this.name, key);
      throw unavailable(`${this.name} ${key}: create failed`, err);
    }
    const entry = { key, value, revision };
    this.apply(entry);
    return entry;
  }

  async update(key: string, value: T, revision: number): Promise<SharedEntry<T>> {
    assertKey(key);
    let next: number;
    try {
      next = await this.kv.update(encodeKvKey(key), JSON.stringify(value), revision);
    } catch (err) {
      if (isWrongLastSequence(err)) throw conflict(this.name, key);
      throw unavailable(`${this.name} ${key}: update failed`, err);
    }
    const entry = { key, value, revision: next };
    this.apply(entry);
    return entry;
  }

  async remove(key: string, revision?: number): Promise<boolean> {
    assertKey(key);
    const current = this.copy.get(key);
    if (!current && revision === undefined) return false;
    try {
      await this.kv.delete(encodeKvKey(key), revision === undefined ? undefined : { previousSeq: revision });
    } catch (err) {
      if (isWrongLastSequence(err)) throw conflict(this.name, key);
      throw unavailable(`${this.name} ${key}: remove failed`, err);
    }
    // The delete marker's revision is not returned; it is above what the copy (or the caller) had.
    const below = Math.max(revision ?? 0, current?.revision ?? 0) + 1;
    this.removedAt.set(key, below);
    this.drop(key, below);
    return current !== undefined;
  }

  watch(listener: (change: SharedChange<T>) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private fromWatch(e: KvWatchEntry): void {
    let key: string;
    try {
      key = decodeKvKey(e.key);
    } catch (err) {
      this.options.onBadRecord?.(e.key, err);
      return;
    }
    if (e.operation === 'DEL' || e.operation === 'PURGE') {
      if ((this.removedAt.get(key) ?? 0) <= e.revision) this.removedAt.delete(key);
      this.drop(key, e.revision);
      return;
    }
    let value: T;
    try {
      value = this.options.read(JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(e.value)));
    } catch (err) {
      this.options.onBadRecord?.(key, err);
      return;
    }
    this.apply({ key, value, revision: e.revision });
  }

  private apply(entry: SharedEntry<T>): void {
    const known = this.copy.get(entry.key);
    if (known && known.revision >= entry.revision) return;
    if ((this.removedAt.get(entry.key) ?? 0) > entry.revision) return;
    if (!known) this.sorted = undefined;
    this.copy.set(entry.key, entry);
    this.notify(known ? { ...entry, previous: known.value } : entry);
  }

  private drop(key: string, revision: number): void {
    const known = this.copy.get(key);
    if (!known || known.revision >= revision) return;
    this.copy.delete(key);
    this.sorted = undefined;
    this.notify({ key, revision, previous: known.value });
  }

  private notify(change: SharedChange<T>): void {
    for (const listener of this.listeners) {
      try {
        listener(change);
      } catch (err) {
        this.logger?.error({ err, table: this.name }, 'shared-state watcher failed');
      }
    }
  }
}

/**
 * The shared-state interface: named tables of versioned records, the same for
 * the embedded single-node store (lmdb.ts) and for a cluster (nats-kv.ts,
 * JetStream KV buckets replicated over the NATS servers).
 *
 * Reads are synchronous and local: lmdb reads its memory map; the KV
 * implementation answers from a copy it keeps current with a watch, so a node
 * with a warm copy answers without a round trip and keeps answering while
 * NATS is unreachable. Writes go to the store of record and are
 * compare-and-set on one key: there are no multi-key transactions, because
 * JetStream KV has none. A caller that changes several keys makes each step
 * idempotent and safe to retry (see modify()).
 *
 * Every stored value is untrusted (another node, another release wrote it):
 * a table is opened with a reader that checks and upgrades it; a value the
 * reader refuses is left out of the table and reported, never thrown at the
 * caller of get().
 */
import { GatewayError } from '../../../device-protocol/errors.ts';

export interface SharedEntry<T> {
  key: string;
  value: T;
  /** Grows with every write of the table (lmdb) or bucket (KV): the handle for compare-and-set. */
  revision: number;
}

/** A change seen by a watcher: value undefined means the key was removed. */
export interface SharedChange<T> {
  key: string;
  revision: number;
  value?: T;
  /** What the local copy held before (absent: nothing, or not known). */
  previous?: T;
}

export interface ListOptions {
  /** Keys starting with this (default: every key). */
  prefix?: string;
  /** Keys after this one (exclusive), for paging. */
  after?: string;
  limit?: number;
}

export interface SharedTable<T> {
  readonly name: string;
  get(key: string): SharedEntry<T> | undefined;
  /** In key order (UTF-16 code unit order, like lmdb's string keys). */
  list(options?: ListOptions): SharedEntry<T>[];
  /** Like list, without holding every entry at once. */
  entries(options?: Omit<ListOptions, 'limit'>): Iterable<SharedEntry<T>>;
  size(): number;
  /** Writes a new key; registry.conflict when the key exists. */
  create(key: string, value: T): Promise<SharedEntry<T>>;
  /** Replaces a key at `revision`; registry.conflict when it changed meanwhile or is gone. */
  update(key: string, value: T, revision: number): Promise<SharedEntry<T>>;
  /** Removes a key (at `revision` when given); false when it was not there. registry.conflict on a stale revision. */
  remove(key: string, revision?: number): Promise<boolean>;
  /** Changes made from now on, by this process or (KV) any node. Returns the unsubscribe. */
  watch(listener: (change: SharedChange<T>) => void): () => void;
  /**
   * Resolves once the local copy holds every write the store had acknowledged
   * when this was called (KV: the watch reached the bucket's last revision;
   * lmdb: at once). For a reader that learnt of a write through another table:
   * the tables' watches are not ordered with each other. registry.unavailable
   * when the store cannot be asked, or the copy does not get there in time.
   */
  caughtUp(): Promise<void>;
}

export interface TableOptions<T> {
  /** Checks and upgrades a stored value (records.ts style); throws on a value it cannot read. */
  read(raw: unknown): T;
  /** A stored value the reader refused (left out of the table). */
  onBadRecord?(key: string, err: unknown): void;
}

export interface SharedState {
  readonly kind: 'lmdb' | 'nats-kv';
  /**
   * Opens (creating if needed) a table, its local copy loaded. Names: 1-32
   * letters, digits, - or _. Open a name with one reader per SharedState: the
   * KV implementation keeps one copy per name and hands it out again.
   */
  table<T>(name: string, options: TableOptions<T>): Promise<SharedTable<T>>;
  close(): Promise<void>;
}

const TABLE_NAME = /^[A-Za-z0-9_-]{1,32}$/;

export function assertTableName(name: string): void {
  if (!TABLE_NAME.test(name)) {
    throw new GatewayError(
      'registry.invalid_field',
      `table name ${JSON.stringify(name)}: 1-32 of A-Z a-z 0-9 _ -`,
    );
  }
}

/** Keys are non-empty strings of at most 512 characters (KV subjects and lmdb keys both have limits). */
export function assertKey(key: string): void {
  if (typeof key !== 'string' || key.length === 0 || key.length > 512) {
    throw new GatewayError('registry.invalid_field', 'a shared-state key is 1-512 characters', {
      field: 'key',
    });
  }
}

export function conflict(table: string, key: string): GatewayError {
  return new GatewayError('registry.conflict', `${table} ${key} changed meanwhile`, { retryable: true });
}

export function isConflict(err: unknown): boolean {
  return err instanceof GatewayError && err.code === 'registry.conflict';
}

/**
 * Read-modify-write of one key with compare-and-set, retried on conflict:
 * `change` gets the current entry (or undefined) and returns the new value,
 * null to remove the key, or undefined to leave it. It may run several times,
 * so it must not have side effects. Returns what was stored last.
 */
export async function modify<T>(
  table: SharedTable<T>,
  key: string,
  change: (current: SharedEntry<T> | undefined) => T | null | undefined,
  attempts = 50,
): Promise<SharedEntry<T> | undefined> {
  for (let i = 0; ; i++) {
    const current = table.get(key);
    const next = change(current);
    try {
      if (next === undefined) return current;
      if (next === null) {
        if (current) await table.remove(key, current.revision);
        return undefined;
      }
      return current ? await table.update(key, next, current.revision) : await table.create(key, next);
    } catch (err) {
      if (!isConflict(err) || i + 1 >= attempts) throw err;
      // Our copy was behind the store, or another writer won this round: wait for the watch to bring
      // the newer value, then decide again. Random pauses keep contending writers from meeting again.
      await new Promise((resolve) => setTimeout(resolve, Math.random() * Math.min(5 * 2 ** i, 200)));
    }
  }
}

/** Entries of a sorted key list between the options' bounds. */
export function* rangeOf<T>(
  sortedKeys: readonly string[],
  lookup: (key: string) => SharedEntry<T> | undefined,
  options: Omit<ListOptions, 'limit'>,
): Generator<SharedEntry<T>> {
  const prefix = options.prefix ?? '';
  let lo = lowerBound(
    sortedKeys,
    options.after !== undefined && options.after > prefix ? options.after : prefix,
  );
  for (; lo < sortedKeys.length; lo++) {
    const key = sortedKeys[lo] as string;
    // Keys with the prefix are one contiguous run from the lower bound on.
    if (!key.startsWith(prefix)) return;
    if (options.after !== undefined && key <= options.after) continue;
    const entry = lookup(key);
    if (entry) yield entry;
  }
}

/** The index of the first key not below `target` in a sorted list (its length when none). */
export function lowerBound(keys: readonly string[], target: string): number {
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((keys[mid] as string) < target) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export function take<T>(items: Iterable<T>, limit: number | undefined): T[] {
  const out: T[] = [];
  if (limit !== undefined && limit <= 0) return out;
  for (const item of items) {
    out.push(item);
    if (limit !== undefined && out.length >= limit) break;
  }
  return out;
}

/**
 * Opens something in the background, retrying with backoff (from 500 ms up to
 * `maxRetryMs`, default 5 s) until it opens or is cancelled: roles start, and
 * serve what they can, while NATS or JetStream is not there yet. The cap is
 * short because a node is not ready until its tables open: after an outage of
 * every NATS server, a node that started meanwhile must not sleep through
 * half a minute of a JetStream that is back.
 */
export const OPEN_RETRY_MAX_MS = 5_000;

/**
 * Whether a failed attempt of openInBackground is worth a warning: the first,
 * then about once a minute (every 12th), so that a node that stays unready
 * says so in a log kept at warn, without a line every 5 s.
 */
export function attemptWorthWarning(attempt: number): boolean {
  return attempt === 1 || attempt % 12 === 0;
}

export function openInBackground<T>(
  open: () => Promise<T>,
  handlers: { opened(value: T): void; failed?(err: unknown, attempt: number): void; maxRetryMs?: number },
): { cancel(): void } {
  const maxRetryMs = handlers.maxRetryMs ?? OPEN_RETRY_MAX_MS;
  let cancelled = false;
  let timer: NodeJS.Timeout | undefined;
  let attempt = 0;
  const tryOpen = (delayMs: number): void => {
    attempt += 1;
    open().then(
      (value) => {
        if (!cancelled) handlers.opened(value);
      },
      (err: unknown) => {
        if (cancelled) return;
        handlers.failed?.(err, attempt);
        timer = setTimeout(() => tryOpen(Math.min(delayMs * 2, maxRetryMs)), delayMs);
        timer.unref();
      },
    );
  };
  tryOpen(500);
  return {
    cancel() {
      cancelled = true;
      clearTimeout(timer);
    },
  };
}

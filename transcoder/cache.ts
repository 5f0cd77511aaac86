/**
 * Content-addressed cache of transcoded variants, node-local in lmdb.
 *
 * Key: sha256 of the source bytes + the variant spec, so every device asking
 * for the same attachment in the same variant shares one entry, whoever sent
 * it and whatever it was called. Bounded in bytes: past the bound, the least
 * recently used entries go first until 90 % of the bound is left.
 *
 * "LRU-ish": a hit moves the entry to the young end only when it was last
 * touched more than `touchIntervalMs` ago, so hot entries do not turn every
 * read into a write.
 *
 * Everything here can be rebuilt from the sources: losing the cache only
 * costs time, which is why a corrupt or unreadable entry is simply a miss.
 */
import { createHash, webcrypto } from 'node:crypto';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { type Database, open, type RootDatabase } from 'lmdb';

export interface TranscodeCacheOptions {
  /** Bound of the stored bytes (values plus a per-entry overhead). */
  maxBytes: number;
  /** Milliseconds since some epoch, for LRU order (injected by tests). */
  now?: () => number;
  /** Default 60 s. */
  touchIntervalMs?: number;
}

interface Entry {
  /** The variant bytes. */
  b: Uint8Array;
  /** What the caller stored with them (format, width, …). */
  m: unknown;
  /** Last use. */
  t: number;
  /** Accounted size. */
  s: number;
}

/** Keys and bookkeeping per entry, counted so that many tiny entries still hit the bound. */
const ENTRY_OVERHEAD = 256;

/**
 * Hex sha256 of the source: the content address.
 *
 * Collision resistance matters here: the cache is shared by every device, so
 * two sources with one key would show one user's picture to another (or let
 * a crafted pair poison an entry). sha256 is also not slower than the weaker
 * choices on this hardware (SHA-NI): measured for a 2.9 MB source on the
 * bench machine, sha256 1.8–2.1 ms, sha1 1.7–1.8, md5 4.1–4.5, blake2b512
 * ~6.6 (node:crypto), so nothing was gained by giving it up.
 */
export function sourceHash(source: Uint8Array | string): string {
  return createHash('sha256').update(source).digest('hex');
}

/** Below this (a few ms of sha256), hashing on the main thread costs less CPU than the copy and hop to the libuv pool. */
const SYNC_HASH_MAX_BYTES = 4 * 1024 * 1024;

/**
 * sourceHash off the main thread for large sources (WebCrypto digests run on
 * the libuv pool): hashing a 25 MB attachment takes tens of milliseconds,
 * which would otherwise stall every session an `all`-mode process holds.
 */
export async function sourceHashAsync(source: Uint8Array): Promise<string> {
  if (source.byteLength <= SYNC_HASH_MAX_BYTES) return sourceHash(source);
  const digest = await webcrypto.subtle.digest('SHA-256', source);
  return Buffer.from(digest).toString('hex');
}

export class TranscodeCache {
  private totalBytes = 0;
  private entryCount = 0;
  private readonly now: () => number;
  private readonly touchIntervalMs: number;
  private closed = false;

  private constructor(
    private readonly env: RootDatabase,
    private readonly entries: Database<Entry, string>,
    private readonly lru: Database<number, [number, string]>,
    private readonly maxBytes: number,
    options: TranscodeCacheOptions,
  ) {
    this.now = options.now ?? Date.now;
    this.touchIntervalMs = options.touchIntervalMs ?? 60_000;
    for (const { value } of this.lru.getRange({})) {
      this.totalBytes += value;
      this.entryCount++;
    }
  }

  /** Opens (or creates) the cache under `<dataDir>/transcoder-cache`. */
  static open(dataDir: string, options: TranscodeCacheOptions): TranscodeCache {
    const dir = join(dataDir, 'transcoder-cache');
    mkdirSync(dir, { recursive: true });
    const openAt = () => {
      // noSync: commits are not fsynced. The cache only saves work, so durability buys
      // nothing here, and the fsync of every write cost ~2.5 ms of CPU per transcode in
      // bench:transcode (system time on lmdb's write thread). A killed process loses
      // nothing (the pages are in the OS); a power loss may lose recent entries or, at
      // worst, leave an environment that does not open: then it is thrown away below.
      const env = open({ path: join(dir, 'cache.mdb'), maxDbs: 4, noSync: true });
      const entries = env.openDB<Entry, string>({ name: 'entries' });
      const lru = env.openDB<number, [number, string]>({ name: 'lru' });
      return new TranscodeCache(env, entries, lru, options.maxBytes, options);
    };
    try {
      return openAt();
    } catch {
      rmSync(join(dir, 'cache.mdb'), { force: true });
      rmSync(join(dir, 'cache.mdb-lock'), { force: true });
      return openAt();
    }
  }

  /** The cache key of a source (by its hash) in one variant. */
  static key(sourceSha256: string, variant: string): string {
    return `${sourceSha256}/${variant}`;
  }

  get stats(): { entries: number; bytes: number; maxBytes: number } {
    return { entries: this.entryCount, bytes: this.totalBytes, maxBytes: this.maxBytes };
  }

  /** The stored bytes and meta, or undefined. */
  get<M = unknown>(key: string): { bytes: Uint8Array; meta: M } | undefined {
    if (this.closed) return undefined;
    let entry: Entry | undefined;
    try {
      entry = this.entries.get(key);
    } catch {
      return undefined;
    }
    if (entry === undefined || !(entry.b instanceof Uint8Array)) return undefined;
    const now = this.now();
    if (now - entry.t >= this.touchIntervalMs) {
      void this.env
        .transaction(() => {
          const current = this.entries.get(key);
          if (current === undefined) return;
          this.lru.removeSync([current.t, key]);
          this.lru.putSync([now, key], current.s);
          this.entries.putSync(key, { ...current, t: now });
        })
        .catch(() => {});
    }
    return { bytes: entry.b, meta: entry.m as M };
  }

  /**
   * Stores a variant (resolves once written) and evicts the least recently
   * used entries past the bound. An entry bigger than a quarter of the bound
   * is not stored at all: it would flush everything else for one request.
   */
  async put(key: string, bytes: Uint8Array, meta: unknown): Promise<void> {
    if (this.closed) return;
    const size = bytes.byteLength + key.length + ENTRY_OVERHEAD;
    if (size > this.maxBytes / 4) return;
    const now = this.now();
    await this.env.transaction(() => {
      const old = this.entries.get(key);
      if (old !== undefined) {
        this.lru.removeSync([old.t, key]);
        this.totalBytes -= old.s;
        this.entryCount--;
      }
      this.entries.putSync(key, { b: bytes, m: meta, t: now, s: size });
      this.lru.putSync([now, key], size);
      this.totalBytes += size;
      this.entryCount++;
      if (this.totalBytes > this.maxBytes) this.evict(Math.floor(this.maxBytes * 0.9));
    });
  }

  /** Inside a write transaction: oldest first until at most `target` bytes are left. */
  private evict(target: number): void {
    const victims: Array<[number, string]> = [];
    let total = this.totalBytes;
    for (const { key, value } of this.lru.getRange({})) {
      if (total <= target) break;
      victims.push(key);
      total -= value;
    }
    for (const [t, key] of victims) {
      const entry = this.entries.get(key);
      this.lru.removeSync([t, key]);
      if (entry !== undefined && entry.t === t) {
        this.entries.removeSync(key);
        this.totalBytes -= entry.s;
        this.entryCount--;
      }
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.env.close();
  }
}

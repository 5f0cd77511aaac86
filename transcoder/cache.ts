/**
 * Content-addressed cache of transcoded variants, node-local in lmdb.
 *
 * Key: a keyed fingerprint of the source bytes (SourceFingerprint) + the
 * variant spec, so every device asking for the same attachment in the same
 * variant shares one entry, whoever sent it and whatever it was called.
 * Bounded in bytes: past the bound, the least recently used entries go first
 * until 90 % of the bound is left.
 *
 * "LRU-ish": a hit moves the entry to the young end only when it was last
 * touched more than `touchIntervalMs` ago, so hot entries do not turn every
 * read into a write.
 *
 * Everything here can be rebuilt from the sources: losing the cache only
 * costs time, which is why a corrupt or unreadable entry is simply a miss.
 */
import { createCipheriv, createHash, randomBytes } from 'node:crypto';
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
 * Hex sha256 of the source. Kept for callers that need a public, unkeyed
 * digest (benchmarks); the cache keys with SourceFingerprint.
 */
export function sourceHash(source: Uint8Array | string): string {
  return createHash('sha256').update(source).digest('hex');
}

/** The fixed GCM nonce of the fingerprint (see SourceFingerprint: the tag never leaves this node). */
const FINGERPRINT_NONCE = new Uint8Array(12);

/**
 * The content address of a source: GMAC (AES-128-GCM over the source as
 * additional data, nothing encrypted) under a secret key of this cache.
 *
 * Why not sha256: collision resistance is what matters (the cache is shared
 * by every device, so two sources with one key would show one user's
 * picture to another, or let a crafted pair poison an entry), but sha256 of
 * a 3 MB photo costs ~1.8 ms of CPU even with SHA-NI, 5–7 % of the transcode
 * it keys (bench:transcode), while GHASH with AES-NI and carry-less multiply
 * runs at ~12 GB/s (0.24 ms). A keyed universal hash is collision resistant
 * against anyone who does not know the key: for two different sources of at
 * most n 16-byte blocks, the chance that their tags agree is at most
 * n / 2^128 (≈ 2^-107 for the 25 MB limit), and each try needs the gateway to
 * transcode a crafted input. The key is random per cache and stored with
 * it; the tags are never shown to anyone (only used as lmdb keys), which is
 * why one fixed nonce is sound here: GMAC's nonce rule protects tags an
 * attacker can see. Whoever can read the key can read and write the cache
 * entries themselves anyway.
 */
export class SourceFingerprint {
  readonly #key: Uint8Array;

  constructor(key: Uint8Array) {
    if (key.byteLength !== 16) throw new Error('the fingerprint key has 16 bytes');
    this.#key = key;
  }

  /** A fingerprint under a fresh random key (no cache: only single-flight joins within this process). */
  static random(): SourceFingerprint {
    return new SourceFingerprint(randomBytes(16));
  }

  /** 32 hex digits. */
  of(source: Uint8Array | string): string {
    const gmac = createCipheriv('aes-128-gcm', this.#key, FINGERPRINT_NONCE);
    gmac.setAAD(typeof source === 'string' ? Buffer.from(source, 'utf8') : source);
    gmac.final();
    return gmac.getAuthTag().toString('hex');
  }
}

/** Where the fingerprint key lives in the cache environment. */
const FINGERPRINT_KEY = 'fingerprint-key';

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
    /** Content addresses of sources, under this cache's own key. */
    readonly fingerprint: SourceFingerprint,
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
      const meta = env.openDB<Uint8Array, string>({ name: 'meta' });
      // Made once, kept with the entries it addresses (a new key would orphan them all).
      let key = meta.get(FINGERPRINT_KEY);
      if (!(key instanceof Uint8Array) || key.byteLength !== 16) {
        const fresh = randomBytes(16);
        env.transactionSync(() => {
          const current = meta.get(FINGERPRINT_KEY);
          if (current instanceof Uint8Array && current.byteLength === 16) key = current;
          else {
            meta.putSync(FINGERPRINT_KEY, fresh);
            key = fresh;
          }
        });
      }
      return new TranscodeCache(
        env,
        entries,
        lru,
        options.maxBytes,
        options,
        new SourceFingerprint(new Uint8Array(key as Uint8Array)),
      );
    };
    try {
      return openAt();
    } catch {
      rmSync(join(dir, 'cache.mdb'), { force: true });
      rmSync(join(dir, 'cache.mdb-lock'), { force: true });
      return openAt();
    }
  }

  /** The cache key of a source (by its fingerprint) in one variant. */
  static key(sourceFingerprint: string, variant: string): string {
    return `${sourceFingerprint}/${variant}`;
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

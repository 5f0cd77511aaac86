/**
 * Authentication attempt limits (SPEC.md §5, Authentication attempt limits):
 * token buckets of failed Hello/Resume attempts per (source address, IMEI)
 * and per source address. Only failures take a token; an empty bucket
 * refuses further attempts with auth.rate_limited and the time until the
 * next token. Successes cost nothing, so a device that authenticates
 * correctly is never slowed down.
 *
 * There is no bucket per IMEI alone: failures from one address must not lock
 * the device out everywhere (anyone who knows an IMEI could), so a device
 * presenting its secret from another address is not affected by them. What
 * the buckets cannot tell apart is an attacker behind the same address as
 * the device (a carrier NAT): the per-address bucket is therefore sized for
 * thousands of devices behind one address. Guessing a secret from many
 * addresses stays hopeless because secrets carry at least 128 bits
 * (server/store/registry.ts). Tokens and resume tokens are checked before
 * any bucket (handshake.ts): they cannot be forged, so only their failures
 * count.
 *
 * Memory is bounded: each kind keeps at most `maxEntries` buckets, least
 * recently failed first out (a Map's insertion order is the LRU order). An
 * evicted bucket starts full again, which at worst lets an address that
 * cycles through more IMEIs than the table holds try somewhat more often; the
 * per-address bucket still caps it.
 */

export interface AuthLimitOptions {
  /** Failed attempts allowed per (source address, IMEI) per minute (also the burst). Default 10. */
  perDevicePerMinute?: number;
  /** Failed attempts allowed per source address per minute, whatever the IMEI (also the burst). Default 1,000. */
  perAddressPerMinute?: number;
  /** Most buckets kept per kind ((address, IMEI), address). Default 100,000. */
  maxEntries?: number;
}

export const DEFAULT_AUTH_LIMITS: Required<AuthLimitOptions> = {
  perDevicePerMinute: DEFAULT_EDGE_LIMITS.authFailuresPerDevicePerMinute,
  perAddressPerMinute: DEFAULT_EDGE_LIMITS.authFailuresPerAddressPerMinute,
  maxEntries: 100_000,
};

import { DEFAULT_EDGE_LIMITS } from './limits.ts';

const MINUTE_MS = 60_000;

interface Bucket {
  tokens: number;
  at: number;
}

/** One LRU-bounded table of token buckets. */
class BucketTable {
  private readonly buckets = new Map<string, Bucket>();
  private readonly perMs: number;

  constructor(
    private readonly capacity: number,
    private readonly maxEntries: number,
  ) {
    this.perMs = capacity / MINUTE_MS;
  }

  get size(): number {
    return this.buckets.size;
  }

  private refill(b: Bucket, now: number): void {
    const elapsed = now - b.at;
    if (elapsed > 0) {
      b.tokens = Math.min(this.capacity, b.tokens + elapsed * this.perMs);
      b.at = now;
    }
  }

  /** Milliseconds until an attempt is allowed for this key (0: allowed now). */
  waitMs(key: string, now: number): number {
    const b = this.buckets.get(key);
    if (b === undefined) return 0;
    this.refill(b, now);
    if (b.tokens >= 1) {
      // Full again: forget it (a bucket at capacity is the same as none).
      if (b.tokens >= this.capacity) this.buckets.delete(key);
      return 0;
    }
    return Math.ceil((1 - b.tokens) / this.perMs);
  }

  /** Takes one token for a failed attempt. */
  fail(key: string, now: number): void {
    let b = this.buckets.get(key);
    if (b === undefined) {
      b = { tokens: this.capacity, at: now };
      if (this.buckets.size >= this.maxEntries) {
        const oldest = this.buckets.keys().next().value as string;
        this.buckets.delete(oldest);
      }
    } else {
      this.refill(b, now);
      this.buckets.delete(key); // re-inserted below: most recently failed last
    }
    b.tokens = Math.max(0, b.tokens - 1);
    this.buckets.set(key, b);
  }
}

/** The key of the (address, IMEI) bucket; '' is an address the engine could not tell. */
function pairKey(imei: string, address: string): string {
  return `${address} ${imei}`;
}

export class AuthLimiter {
  private readonly pairs: BucketTable;
  private readonly addresses: BucketTable;

  constructor(options: AuthLimitOptions = {}) {
    const o = { ...DEFAULT_AUTH_LIMITS, ...options };
    for (const [k, v] of Object.entries(o)) {
      if (typeof v !== 'number' || !Number.isFinite(v) || v < 1) {
        throw new RangeError(`auth limit ${k} must be a number of at least 1`);
      }
    }
    this.pairs = new BucketTable(o.perDevicePerMinute, o.maxEntries);
    this.addresses = new BucketTable(o.perAddressPerMinute, o.maxEntries);
  }

  /** Buckets held (for tests and metrics). */
  get size(): { pairs: number; addresses: number } {
    return { pairs: this.pairs.size, addresses: this.addresses.size };
  }

  /**
   * How long an attempt for `imei` from `address` (its key, pre-auth.ts
   * addressKey) must wait (0: go ahead). `imei` may be undefined (malformed,
   * or a Resume whose session id names no device); `address` may be ''.
   */
  check(imei: string | undefined, address: string, now: number): number {
    const a = address === '' ? 0 : this.addresses.waitMs(address, now);
    const p = imei === undefined ? 0 : this.pairs.waitMs(pairKey(imei, address), now);
    return Math.max(a, p);
  }

  /** Counts a failed attempt against the (address, IMEI) and the address buckets. */
  fail(imei: string | undefined, address: string, now: number): void {
    if (address !== '') this.addresses.fail(address, now);
    if (imei !== undefined) this.pairs.fail(pairKey(imei, address), now);
  }
}

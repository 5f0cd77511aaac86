/**
 * Connections before authentication (SPEC.md §5, Limits before
 * authentication). Until Hello or Resume is answered a connection costs a
 * socket and a file descriptor and proves nothing, so they are capped per
 * source address and in all; a connection over a cap is refused by the engine
 * before it keeps the socket (HTTP 429 per address, 503 in all). The Hello
 * deadline that closes the silent ones is the sweep's (sweep.ts).
 *
 * Each address with such connections also owns the frame bucket of its
 * unauthenticated carriers (limits.ts RateState, preAuthFramesPerSecondPerAddress
 * a second and as the burst): opening another carrier does not refill it, so
 * one address cannot push more Hello and Resume work than that, however many
 * connections it opens. (Frames that ride behind a Hello or Resume are taken
 * from the session's bucket as well once it has one: edge-core.ts welcomed.)
 *
 * Memory: an entry lives while its address has connections here or its
 * bucket is not full again (at most a second after its last frame); prune()
 * drops the rest, and at most `maxEntries` are kept.
 */
import { takeTokenOf } from './limits.ts';

/** Why a connection was refused before authentication (the `reason` label of the metric). */
export type PreAuthRefusal = 'address_cap' | 'total_cap';

/** The unauthenticated connections and the frame bucket of one source address. */
export interface AddressEntry {
  readonly key: string;
  open: number;
  tokens: number;
  tokensAt: number;
}

export interface PreAuthLimits {
  maxUnauthenticatedPerAddress: number;
  maxUnauthenticated: number;
  preAuthFramesPerSecondPerAddress: number;
}

const MAX_ENTRIES = 100_000;

/**
 * The key of a source address: IPv4-mapped IPv6 as IPv4; IPv6 by its /64,
 * the block one subscriber gets (an address per connection is free within it).
 */
export function addressKey(address: string): string {
  if (address.startsWith('::ffff:') && address.includes('.')) return address.slice(7);
  if (!address.includes(':')) return address;
  const groups = expandIPv6(address);
  return groups === undefined ? address : `${groups.slice(0, 4).join(':')}::/64`;
}

/** The eight groups of an IPv6 address (lower-case, no leading zeros); undefined when malformed. */
function expandIPv6(address: string): string[] | undefined {
  const zone = address.indexOf('%');
  const a = (zone < 0 ? address : address.slice(0, zone)).toLowerCase();
  const halves = a.split('::');
  if (halves.length > 2) return undefined;
  const head = halves[0] === '' ? [] : (halves[0] ?? '').split(':');
  const tail = halves.length === 2 && halves[1] !== '' ? (halves[1] ?? '').split(':') : [];
  const fill = halves.length === 2 ? 8 - head.length - tail.length : 0;
  if (fill < 0) return undefined;
  const groups = [...head, ...new Array<string>(fill).fill('0'), ...tail];
  if (groups.length !== 8) return undefined;
  const out: string[] = [];
  for (const g of groups) {
    if (!/^[0-9a-f]{1,4}$/.test(g)) return undefined;
    out.push(Number.parseInt(g, 16).toString(16));
  }
  return out;
}

export class PreAuthGate {
  private readonly entries = new Map<string, AddressEntry>();
  /** Unauthenticated connections in all. */
  open = 0;

  constructor(
    private readonly limits: PreAuthLimits,
    private readonly maxEntries = MAX_ENTRIES,
  ) {}

  /** Addresses tracked (for tests). */
  get size(): number {
    return this.entries.size;
  }

  /** Would a new connection from this address (its key) be refused, and why; undefined: admitted. */
  refusal(key: string): PreAuthRefusal | undefined {
    if (this.open >= this.limits.maxUnauthenticated) return 'total_cap';
    const e = this.entries.get(key);
    if (e !== undefined && e.open >= this.limits.maxUnauthenticatedPerAddress) return 'address_cap';
    return undefined;
  }

  /** A connection from this address is open and not authenticated yet; returns its address's entry. */
  enter(key: string): AddressEntry {
    let e = this.entries.get(key);
    if (e === undefined) {
      if (this.entries.size >= this.maxEntries) this.evictIdle();
      e = { key, open: 0, tokens: Number.POSITIVE_INFINITY, tokensAt: 0 };
      this.entries.set(key, e);
    }
    e.open++;
    this.open++;
    return e;
  }

  /** The connection authenticated or closed. */
  leave(e: AddressEntry): void {
    if (e.open <= 0) return;
    e.open--;
    this.open--;
  }

  /** Takes one frame token of the address's unauthenticated carriers; false when it is empty. */
  takeFrame(e: AddressEntry, now: number): boolean {
    const n = this.limits.preAuthFramesPerSecondPerAddress;
    return takeTokenOf(e, n, n, now);
  }

  /** Forgets addresses with no connection here whose bucket is full again (called by the sweep). */
  prune(now: number): void {
    const full = this.limits.preAuthFramesPerSecondPerAddress;
    const perMs = full / 1000;
    for (const e of this.entries.values()) {
      if (e.open > 0) continue;
      if (e.tokens + (now - e.tokensAt) * perMs >= full) {
        this.entries.delete(e.key);
      }
    }
  }

  /** Table full: the oldest address without connections goes (a Map iterates in insertion order). */
  private evictIdle(): void {
    for (const e of this.entries.values()) {
      if (e.open === 0) {
        this.entries.delete(e.key);
        return;
      }
    }
  }
}

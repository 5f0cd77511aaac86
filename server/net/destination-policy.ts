/**
 * Where the gateway may connect on a handset's behalf (issue #11, SSRF).
 *
 * A handset names the mail or chat server it wants (`mail.account.add`,
 * `im.login`), so without a policy it could make the gateway connect to the
 * ops port on 127.0.0.1, a database on 10.x or a cloud metadata service on
 * 169.254.169.254, and read the answers back from the error messages. The
 * policy is checked after DNS resolution, on every address, and the caller
 * connects to the address that was checked (`PinnedDestination.address`), so
 * a name that resolves to a public address for the check and to a private one
 * a moment later (DNS rebinding) cannot switch the connection.
 *
 * Default: public unicast addresses only, on the ports of the service. The
 * operator opens more with `transport.allowDestinations` (CIDRs or host names,
 * `*.example.com` for a domain and its subdomains): a destination named there
 * is allowed on any port, since the operator chose it.
 */
import { lookup as dnsLookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';
import { GatewayError } from '../../device-protocol/errors.ts';

/** The services that connect out, each with the ports it may use by default. */
export const SERVICE_PORTS = {
  // IMAP, IMAPS; SMTP relay, submission over TLS, submission.
  mail: [143, 993, 25, 465, 587],
  // XMPP client-to-server, with STARTTLS and with direct TLS (XEP-0368).
  im: [5222, 5223],
  // Push services (Web Push, FCM, APNs) speak HTTPS.
  push: [443],
  // Alarm webhooks (server/alarms/channels/webhook.ts) speak HTTPS.
  webhook: [443],
  // SMS wake-ups (server/transport/push/sms-sender.ts): SMPP to the operator's SMSC.
  sms: [2775],
} as const;

export type OutboundService = keyof typeof SERVICE_PORTS;

/**
 * Address ranges never reachable by default: loopback, private, link-local,
 * CGNAT, multicast, unspecified, and the other special-purpose blocks of the
 * IANA registries that a public mail or chat server cannot be on.
 */
const DENIED_V4: ReadonlyArray<readonly [string, number]> = [
  ['0.0.0.0', 8], // "this network", unspecified
  ['10.0.0.0', 8], // private
  ['100.64.0.0', 10], // CGNAT (shared address space)
  ['127.0.0.0', 8], // loopback
  ['169.254.0.0', 16], // link-local (cloud metadata services live here)
  ['172.16.0.0', 12], // private
  ['192.0.0.0', 24], // IETF protocol assignments
  ['192.0.2.0', 24], // documentation
  ['192.88.99.0', 24], // 6to4 relay anycast (deprecated)
  ['192.168.0.0', 16], // private
  ['198.18.0.0', 15], // benchmarking
  ['198.51.100.0', 24], // documentation
  ['203.0.113.0', 24], // documentation
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved, and 255.255.255.255 broadcast
];

const DENIED_V6: ReadonlyArray<readonly [string, number]> = [
  ['::', 128], // unspecified
  ['::1', 128], // loopback
  ['100::', 64], // discard-only
  ['2001:db8::', 32], // documentation
  ['fc00::', 7], // unique local (private)
  ['fe80::', 10], // link-local
  ['fec0::', 10], // site-local (deprecated, still routed by some stacks)
  ['ff00::', 8], // multicast
];

function blockList(
  v4: ReadonlyArray<readonly [string, number]>,
  v6: ReadonlyArray<readonly [string, number]>,
) {
  const list = new BlockList();
  for (const [net, prefix] of v4) list.addSubnet(net, prefix, 'ipv4');
  for (const [net, prefix] of v6) list.addSubnet(net, prefix, 'ipv6');
  return list;
}

const DENIED = blockList(DENIED_V4, DENIED_V6);

/**
 * The IPv4 address an IPv6 address stands for, where it embeds one that a
 * host or a gateway on the way would reach: IPv4-mapped (::ffff:a.b.c.d),
 * IPv4-compatible (::a.b.c.d), NAT64 (64:ff9b::/96) and 6to4 (2002::/16).
 */
export function embeddedIPv4(address: string): string | undefined {
  if (isIP(address) !== 6) return undefined;
  const groups = expandIPv6(address);
  if (groups === undefined) return undefined;
  const v4 = (hi: number, lo: number) => `${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`;
  const [g0, g1, g2, g3, g4, g5, g6, g7] = groups as [
    number,
    number,
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const zeroTo4 = g0 === 0 && g1 === 0 && g2 === 0 && g3 === 0 && g4 === 0;
  if (zeroTo4 && g5 === 0xffff) return v4(g6, g7);
  // ::a.b.c.d, but not :: and ::1 (handled as IPv6 themselves).
  if (zeroTo4 && g5 === 0 && (g6 !== 0 || g7 > 1)) return v4(g6, g7);
  if (g0 === 0x64 && g1 === 0xff9b && g2 === 0 && g3 === 0 && g4 === 0 && g5 === 0) return v4(g6, g7);
  if (g0 === 0x2002) return v4(g1, g2);
  return undefined;
}

/** The eight 16-bit groups of an IPv6 address (a trailing dotted quad included); undefined if malformed. */
function expandIPv6(address: string): number[] | undefined {
  let text = address.toLowerCase();
  const zone = text.indexOf('%');
  if (zone >= 0) text = text.slice(0, zone);
  const lastColon = text.lastIndexOf(':');
  const last = text.slice(lastColon + 1);
  if (last.includes('.')) {
    // A trailing dotted quad (::ffff:1.2.3.4) becomes its two hex groups.
    const parts = last.split('.').map(Number);
    if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) return undefined;
    const [a, b, c, d] = parts as [number, number, number, number];
    text = `${text.slice(0, lastColon + 1)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const parse = (s: string) => (s === '' ? [] : s.split(':').map((h) => Number.parseInt(h, 16)));
  const head = parse(halves[0] ?? '');
  const rest = halves.length === 2 ? parse(halves[1] ?? '') : [];
  const known = head.length + rest.length;
  if (halves.length === 1 && known !== 8) return undefined;
  if (known > 8) return undefined;
  const groups = [...head, ...new Array<number>(8 - known).fill(0), ...rest];
  if (groups.some((g) => !Number.isInteger(g) || g < 0 || g > 0xffff)) return undefined;
  return groups;
}

/** True when the address is in one of the ranges refused by default (IPv4 or IPv6, embedded IPv4 included). */
export function isSpecialAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 0) return true; // not an address: never connect to it
  if (family === 4) return DENIED.check(address, 'ipv4');
  const inner = embeddedIPv4(address);
  if (inner !== undefined && DENIED.check(inner, 'ipv4')) return true;
  return DENIED.check(address.split('%')[0] ?? address, 'ipv6');
}

export interface ResolvedAddress {
  address: string;
  family: 4 | 6;
}

export type Resolver = (host: string) => Promise<ResolvedAddress[]>;

const systemResolver: Resolver = async (host) => {
  const all = await dnsLookup(host, { all: true, verbatim: true });
  return all.map((a) => ({ address: a.address, family: a.family === 6 ? 6 : 4 }));
};

export interface DestinationPolicyOptions {
  /** CIDRs (`10.1.0.0/16`, `fd00::/8`), single addresses, host names, or `*.example.com`. */
  allow?: readonly string[];
  /** Ports allowed for every service in addition to its own. */
  extraPorts?: readonly number[];
  /** Injected in tests; the system resolver (getaddrinfo) otherwise. */
  resolve?: Resolver;
}

/** Where to connect: the checked address, and the name for TLS (SNI and certificate check). */
export interface PinnedDestination {
  /** The name the handset gave (lower case, no trailing dot); the TLS servername unless it is an address. */
  host: string;
  /** The address to connect to: the one the policy checked. */
  address: string;
  family: 4 | 6;
  port: number;
  /** Set when an allowDestinations entry (rather than the default policy) let it through. */
  allowedBy?: string;
}

/** The one refusal a device sees: a fixed message, nothing of the destination's answer. */
export function destinationNotAllowed(field?: string): GatewayError {
  return new GatewayError(
    'policy.destination_not_allowed',
    "The gateway's outbound policy does not allow connecting to this server.",
    field === undefined ? {} : { field },
  );
}

interface AllowEntry {
  text: string;
  match(host: string, address: string | undefined): boolean;
}

function parseAllowEntry(raw: string): AllowEntry {
  const text = raw.trim().toLowerCase();
  if (text === '') throw new Error('an empty destination entry');
  const slash = text.indexOf('/');
  const base = slash >= 0 ? text.slice(0, slash) : text;
  const family = isIP(base);
  if (family !== 0) {
    const max = family === 4 ? 32 : 128;
    const prefix = slash >= 0 ? Number(text.slice(slash + 1)) : max;
    if (!Number.isInteger(prefix) || prefix < 0 || prefix > max) {
      throw new Error(`"${raw}": the prefix length must be 0..${max}`);
    }
    const list = new BlockList();
    list.addSubnet(base, prefix, family === 4 ? 'ipv4' : 'ipv6');
    const type = family === 4 ? 'ipv4' : 'ipv6';
    return {
      text,
      match: (_host, address) => {
        if (address === undefined) return false;
        const f = isIP(address);
        if (f === 0) return false;
        if (type === 'ipv4') {
          const v4 = f === 4 ? address : embeddedIPv4(address);
          return v4 !== undefined && list.check(v4, 'ipv4');
        }
        return f === 6 && list.check(address.split('%')[0] ?? address, 'ipv6');
      },
    };
  }
  if (slash >= 0) throw new Error(`"${raw}" is neither a CIDR nor a host name`);
  const name = text.endsWith('.') ? text.slice(0, -1) : text;
  if (name.startsWith('*.')) {
    const suffix = name.slice(1); // ".example.com"
    if (!isHostName(suffix.slice(1))) throw new Error(`"${raw}" is not a host name pattern`);
    return { text, match: (host) => host === suffix.slice(1) || host.endsWith(suffix) };
  }
  if (!isHostName(name)) throw new Error(`"${raw}" is neither a CIDR nor a host name`);
  return { text, match: (host) => host === name };
}

/** Why `raw` is not an allowDestinations entry, or undefined when it is one (config validation). */
export function allowEntryProblem(raw: string): string | undefined {
  try {
    parseAllowEntry(raw);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;

function isHostName(name: string): boolean {
  return name.length > 0 && name.length <= 253 && name.split('.').every((l) => LABEL.test(l));
}

/** Normalises what a handset sent as a host: lower case, no trailing dot, brackets off an IPv6 literal. */
function normaliseHost(host: string): string {
  let h = host.trim().toLowerCase();
  if (h.startsWith('[') && h.endsWith(']')) h = h.slice(1, -1);
  if (h.endsWith('.')) h = h.slice(0, -1);
  return h;
}

export class DestinationPolicy {
  private readonly allow: AllowEntry[];
  private readonly extraPorts: ReadonlySet<number>;
  private readonly resolver: Resolver;

  /** Throws an Error naming the bad entry (config validation turns it into config.invalid). */
  constructor(options: DestinationPolicyOptions = {}) {
    this.allow = (options.allow ?? []).map(parseAllowEntry);
    this.extraPorts = new Set(options.extraPorts ?? []);
    this.resolver = options.resolve ?? systemResolver;
  }

  /** The allowDestinations entries, normalised (for the start-up log). */
  get allowList(): string[] {
    return this.allow.map((a) => a.text);
  }

  /**
   * Resolves `host` and returns the address to connect to, or throws
   * policy.destination_not_allowed (no address allowed) or the resolver's
   * error (unknown host: the caller maps it to its service's unreachable code).
   * Every address the name resolves to is checked; the first allowed one is
   * returned, in the resolver's order.
   */
  async check(service: OutboundService, host: string, port: number): Promise<PinnedDestination> {
    const name = normaliseHost(host);
    if (!Number.isInteger(port) || port < 1 || port > 65_535) throw destinationNotAllowed('port');
    const byName = this.allow.find((a) => a.match(name, undefined));
    const literal = isIP(name);
    const candidates: ResolvedAddress[] =
      literal !== 0 ? [{ address: name, family: literal === 6 ? 6 : 4 }] : await this.resolver(name);
    for (const c of candidates) {
      const byAddress = byName ?? this.allow.find((a) => a.match(name, c.address));
      if (byAddress !== undefined) {
        return { host: name, address: c.address, family: c.family, port, allowedBy: byAddress.text };
      }
      if (isSpecialAddress(c.address)) continue;
      if (!this.portAllowed(service, port)) throw destinationNotAllowed('port');
      return { host: name, address: c.address, family: c.family, port };
    }
    throw destinationNotAllowed('host');
  }

  private portAllowed(service: OutboundService, port: number): boolean {
    return (SERVICE_PORTS[service] as readonly number[]).includes(port) || this.extraPorts.has(port);
  }
}

/** The policy from the comma-separated MMGW_ALLOW_DESTINATIONS and the config's list, merged. */
export function allowListFrom(configured: readonly string[] | undefined, env: string | undefined): string[] {
  const fromEnv = (env ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  return [...(configured ?? []), ...fromEnv];
}

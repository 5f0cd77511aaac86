/**
 * Where an account's session connects when the gateway's outbound policy
 * applies (issue #11 item 2, server/net/destination-policy.ts).
 *
 * Without a policy @xmpp/client finds the server itself (@xmpp/resolve: SRV
 * records, then the domain's addresses, and a host-meta fetch over HTTPS),
 * and connects to whatever a name resolves to when it connects. With one,
 * the session resolves first and hands the library only checked addresses:
 * an explicit host and port, or else the domain's SRV targets
 * (`_xmpps-client._tcp` direct TLS, XEP-0368, and `_xmpp-client._tcp`
 * STARTTLS, by priority) and, without SRV records, the domain on 5222. Each
 * target is checked in that order; the library connects to the checked
 * address (`xmpp://<address>:<port>`), so a name that resolves elsewhere a
 * moment later (DNS rebinding) cannot switch the connection. The stream's
 * domain stays the JID's, and TLS checks the certificate against it: STARTTLS
 * takes the servername from the stream's domain (@xmpp/starttls), direct TLS
 * gets it here (useDomainForTls), never the address.
 */
import { resolveSrv as systemResolveSrv } from 'node:dns/promises';
import { isIP } from 'node:net';
import { GatewayError } from '../../../../device-protocol/errors.ts';
import {
  type DestinationPolicy,
  destinationNotAllowed,
  type PinnedDestination,
} from '../../../net/destination-policy.ts';

export interface SrvRecord {
  name: string;
  port: number;
  priority: number;
  weight: number;
}

export type SrvResolver = (name: string) => Promise<SrvRecord[]>;

export const systemSrvResolver: SrvResolver = (name) => systemResolveSrv(name);

/** SRV targets looked at; a zone listing more is cut (each target costs a lookup). */
const MAX_TARGETS = 8;
/** "No such record" answers: the domain has no SRV records, not a failure. */
const NO_RECORDS = new Set(['ENOTFOUND', 'ENODATA']);

export interface XmppTarget {
  host: string;
  port: number;
  /** Direct TLS (XEP-0368) rather than STARTTLS. */
  directTls: boolean;
}

export interface XmppDestination {
  /** What @xmpp/client connects to: the checked address, never a name. */
  service: string;
  pinned: PinnedDestination;
  directTls: boolean;
}

export interface DestinationOptions {
  policy: DestinationPolicy;
  /** The JID's domain. */
  domain: string;
  host?: string | undefined;
  port?: number | undefined;
  /** node:dns by default. */
  resolveSrv?: SrvResolver | undefined;
  /** Each destination as it is handed out (for the log). */
  onChecked?: (destination: XmppDestination) => void;
}

/** The targets to try for an account, best first: the explicit server, or the domain's SRV records, or the domain. */
export async function xmppTargets(opts: Omit<DestinationOptions, 'policy'>): Promise<XmppTarget[]> {
  if (opts.host !== undefined && opts.host !== '') {
    return [{ host: opts.host, port: opts.port ?? 5222, directTls: false }];
  }
  const resolveSrv = opts.resolveSrv ?? systemSrvResolver;
  const lookup = async (service: string, directTls: boolean) => {
    try {
      const records = await resolveSrv(`_${service}._tcp.${opts.domain}`);
      return records.map((r) => ({ ...r, directTls }));
    } catch (err) {
      if (NO_RECORDS.has((err as { code?: string }).code ?? '')) return [];
      throw err;
    }
  };
  const records = (await Promise.all([lookup('xmpps-client', true), lookup('xmpp-client', false)])).flat();
  // RFC 2782: a lone "." target says the service is decidedly not available at this domain.
  const usable = records.filter((r) => r.name !== '.' && r.name !== '' && r.port > 0);
  if (records.length > 0 && usable.length === 0) {
    throw new GatewayError('im.unknown_domain', 'the XMPP domain says it offers no chat service');
  }
  if (usable.length === 0) return [{ host: opts.domain, port: 5222, directTls: false }];
  // As @xmpp/resolve orders them: priority, then the heavier weight first.
  usable.sort((a, b) => a.priority - b.priority || b.weight - a.weight);
  return usable.slice(0, MAX_TARGETS).map((r) => ({ host: r.name, port: r.port, directTls: r.directTls }));
}

/**
 * The destinations the policy allows, best first, each checked (resolved)
 * only when the one before it did not work out. Throws, after the last,
 * policy.destination_not_allowed when the policy refused a target, else the
 * resolver's error (an unknown host).
 */
export async function* checkedDestinations(opts: DestinationOptions): AsyncGenerator<XmppDestination> {
  const targets = await xmppTargets(opts);
  let refused: unknown;
  let failed: unknown;
  let any = false;
  for (const target of targets) {
    let pinned: PinnedDestination;
    try {
      pinned = await opts.policy.check('im', target.host, target.port);
    } catch (err) {
      if (err instanceof GatewayError && err.code === 'policy.destination_not_allowed') refused ??= err;
      else failed ??= err;
      continue;
    }
    any = true;
    const destination = {
      service: serviceUri(pinned, target.directTls),
      pinned,
      directTls: target.directTls,
    };
    opts.onChecked?.(destination);
    yield destination;
  }
  if (!any) throw refused ?? failed ?? destinationNotAllowed('host');
}

function serviceUri(pinned: PinnedDestination, directTls: boolean): string {
  const address = pinned.family === 6 ? `[${pinned.address}]` : pinned.address;
  return `${directTls ? 'xmpps' : 'xmpp'}://${address}:${pinned.port}`;
}

/** The part of @xmpp/client that turns a service URI into socket options. */
export interface SocketParameterSource {
  socketParameters(service: string): Record<string, unknown> | undefined;
}

/**
 * Socket options for a service URI, adjusted: an IPv6 literal loses the
 * brackets `new URL` keeps on it (the library unwraps only [::1], so
 * net.connect looked up "[2001:db8::1]" as a name), and a direct-TLS
 * connection to an address checks the certificate against the JID's domain
 * (SNI too), not the address.
 */
export function useDomainForTls(entity: SocketParameterSource, domain: string): void {
  const base = entity.socketParameters;
  entity.socketParameters = function socketParameters(this: unknown, service: string) {
    const params = base.call(this, service);
    if (params === undefined || typeof params.host !== 'string') return params;
    let host = params.host;
    if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
    params.host = host;
    if (service.startsWith('xmpps:') && isIP(host) !== 0 && isIP(domain) === 0) params.servername = domain;
    return params;
  };
}

/**
 * A see-other-host stream error makes the library connect wherever the server
 * says (RFC 6120 §4.9.3.19), past the policy and outside the session's own
 * loop: under the policy it ends the stream like any other stream error.
 */
export function refuseRedirects(entity: {
  _onSeeOtherHost(error: Error): unknown;
  emit(event: 'error', error: Error): boolean;
}): void {
  entity._onSeeOtherHost = (error: Error) => entity.emit('error', error);
}

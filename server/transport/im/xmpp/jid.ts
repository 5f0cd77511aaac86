/**
 * JID handling: the account's own address, the bare addresses of everyone
 * else, and where to connect for an account.
 */
import { jid as parseJid } from '@xmpp/client';
import { GatewayError } from '../../../../device-protocol/errors.ts';

/**
 * Bare JIDs of addresses seen lately. @xmpp/jid parses with XEP-0106 escape
 * detection, twice per call (parse, then bare()): on the relay path that was
 * a tenth of the gateway's CPU, and the same few addresses come back on every
 * stanza. Bounded in entries and key length, so a hostile peer cannot grow it.
 */
const bareCache = new Map<string, string>();
const BARE_CACHE_ENTRIES = 10_000;
const BARE_CACHE_KEY_CHARS = 256;

/** The bare JID of an address, normalised; '' for anything that is not a JID. */
export function bareJid(address: string | undefined): string {
  if (!address) return '';
  const cached = bareCache.get(address);
  if (cached !== undefined) return cached;
  const bare = parseBareJid(address);
  if (address.length <= BARE_CACHE_KEY_CHARS) {
    if (bareCache.size >= BARE_CACHE_ENTRIES) bareCache.clear();
    bareCache.set(address, bare);
  }
  return bare;
}

function parseBareJid(address: string): string {
  try {
    const parsed = parseJid(address);
    if (!parsed.domain || parsed.domain.includes('@')) return '';
    return parsed.bare().toString();
  } catch {
    return '';
  }
}

/** The resource part of a full JID ('' for a bare one); the address must already be a valid JID. */
export function resourceOf(address: string): string {
  return parseJid(address).resource ?? '';
}

export interface AccountAddress {
  /** Bare, normalised. */
  jid: string;
  local: string;
  domain: string;
}

/** The account's own JID, which must be a bare user@domain. */
export function accountAddress(address: string): AccountAddress {
  const jid = bareJid(address);
  if (!jid.includes('@')) {
    throw new GatewayError('request.bad_input', 'jid must be a bare JID like user@domain', {
      field: 'jid',
    });
  }
  const { local, domain } = parseJid(jid);
  return { jid, local, domain };
}

/**
 * What @xmpp/client connects to: with an explicit host a service URI (an IPv6
 * literal bracketed); with none the bare domain, for which @xmpp/resolve looks
 * up SRV records, then A/AAAA.
 */
export function serviceFor(domain: string, host?: string, port?: number): string {
  return host ? `xmpp://${host.includes(':') ? `[${host}]` : host}:${port ?? 5222}` : domain;
}

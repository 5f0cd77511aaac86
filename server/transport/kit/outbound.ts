/**
 * The transport role's outbound settings (config `transport`, issue #11): one
 * DestinationPolicy per node, which every connection of mail and chat goes
 * through, and the number of accounts a device may add.
 *
 * Default-deny: without `allowDestinations` a service reaches public
 * addresses on its own ports only (server/net/destination-policy.ts), so a
 * transport built without settings (a test, a forgotten option) is the safe
 * one. Test rigs and `npm run peers` open loopback explicitly.
 */
import { GatewayError } from '../../../device-protocol/errors.ts';
import { DestinationPolicy, type Resolver } from '../../net/destination-policy.ts';

/** The config's `transport` section (server/config.ts); every key optional. */
export interface TransportSettings {
  allowDestinations?: readonly string[];
  allowPorts?: readonly number[];
  maxAccountsPerDevice?: number;
  mailConnectTimeoutMs?: number;
}

/** Accounts one device may add itself, per service, unless the config says otherwise. */
export const DEFAULT_MAX_ACCOUNTS_PER_DEVICE = 10;

/** Throws an Error naming a bad entry (config validation catches those before). */
export function outboundPolicy(
  settings: TransportSettings | undefined,
  resolve?: Resolver,
): DestinationPolicy {
  return new DestinationPolicy({
    allow: settings?.allowDestinations ?? [],
    extraPorts: settings?.allowPorts ?? [],
    ...(resolve ? { resolve } : {}),
  });
}

/**
 * The cap on accounts per device: refused before anything is connected, with
 * a fixed message (the count is the device's own business, the limit the operator's).
 */
export function assertAccountRoom(held: number, max: number): void {
  if (held < max) return;
  throw new GatewayError(
    'policy.too_many_accounts',
    `This device has ${held} accounts of this service; the gateway allows ${max}.`,
  );
}

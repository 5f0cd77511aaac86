/**
 * The node's outbound policy applied to mail servers (issue #11, SSRF). Every
 * IMAP and SMTP connection (requests, INBOX watchers, provisioned accounts,
 * the checks of mail.account.add) resolves its host through
 * DestinationPolicy.check and connects to the address that was checked, the
 * name kept for TLS (SNI and the certificate check): a name that resolves to
 * a public address for the check and to 127.0.0.1 a moment later (DNS
 * rebinding) cannot move the connection.
 *
 * A refusal is immediate and the same whatever listens there (nothing is
 * connected), so the answer says nothing about the destination's ports.
 */
import { isIP } from 'node:net';
import type { Logger } from 'pino';
import { GatewayError } from '../../../device-protocol/errors.ts';
import type { DestinationPolicy, PinnedDestination } from '../../net/destination-policy.ts';
import type { MailServerSettings } from './account-store.ts';
import { mailConnectError } from './mail-errors.ts';

export type MailServerRole = 'imap' | 'smtp';

/**
 * Where to connect for `settings`: the checked address. Throws
 * policy.destination_not_allowed (field `imap.host`, `smtp.port`, …) or,
 * for a name that does not resolve, mail.unreachable.
 */
export async function mailDestination(
  policy: DestinationPolicy,
  server: MailServerRole,
  settings: Pick<MailServerSettings, 'host' | 'port'>,
  logger?: Logger,
): Promise<PinnedDestination> {
  try {
    return await policy.check('mail', settings.host, settings.port);
  } catch (err) {
    if (err instanceof GatewayError && err.code === 'policy.destination_not_allowed') {
      logger?.info(
        { server, host: settings.host, port: settings.port, code: err.code },
        'mail server refused by the outbound policy',
      );
      throw new GatewayError(err.code, err.message, { field: `${server}.${err.field ?? 'host'}` });
    }
    throw mailConnectError(err, server, logger);
  }
}

/** The TLS name of a pinned destination: the host name the handset gave, never an address (SNI carries none). */
export function tlsServerName(destination: PinnedDestination): string | undefined {
  return isIP(destination.host) === 0 ? destination.host : undefined;
}

/**
 * The hostile-peers kit (issue #11, Tests): loopback servers for IMAP, SMTP
 * and XMPP that misbehave on purpose. See README.md beside this file.
 *
 *   const peer = await startHostilePeer('xmpp', 'slow-drip');
 *   t.after(() => peer.stop());
 */
import { type HostileImapOptions, startHostileImap } from './imap.ts';
import type { HostileBehaviour, HostilePeer, HostileProtocol } from './peer.ts';
import { type HostileSmtpOptions, startHostileSmtp } from './smtp.ts';
import { type HostileXmppOptions, startHostileXmpp } from './xmpp.ts';

export { CERT_NAMES } from './cert.ts';
export type { HostileImapOptions } from './imap.ts';
export {
  HOSTILE_BEHAVIOURS,
  type HostileBehaviour,
  type HostileOptions,
  type HostilePeer,
  type HostileProtocol,
  type HostileSession,
  httpResponse,
  sshBanner,
} from './peer.ts';
export type { HostileSmtpOptions } from './smtp.ts';
export type { HostileXmppOptions } from './xmpp.ts';
export { startHostileImap, startHostileSmtp, startHostileXmpp };

export interface HostileOptionsByProtocol {
  imap: HostileImapOptions;
  smtp: HostileSmtpOptions;
  xmpp: HostileXmppOptions;
}

/** One entry point for table-driven tests: every protocol × behaviour. */
export function startHostilePeer<P extends HostileProtocol>(
  protocol: P,
  behaviour: HostileBehaviour,
  opts: HostileOptionsByProtocol[P] = {},
): Promise<HostilePeer> {
  switch (protocol) {
    case 'imap':
      return startHostileImap(behaviour, opts as HostileImapOptions);
    case 'smtp':
      return startHostileSmtp(behaviour, opts as HostileSmtpOptions);
    default:
      return startHostileXmpp(behaviour, opts as HostileXmppOptions);
  }
}

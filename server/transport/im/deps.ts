import { GatewayError } from '../../../device-protocol/errors.ts';
import type { DestinationPolicy } from '../../net/destination-policy.ts';
import { within } from '../kit/deadline.ts';
import type { MethodContext } from '../types.ts';
import type { ImAccount, ImAccountStore } from './account-store.ts';
import type { ImArchiveCursors } from './archive-cursors.ts';
import type { ImSentRecords } from './sent-records.ts';
import type { XmppSessionPool } from './session-pool.ts';
import type { XmppAccountSession } from './xmpp-session.ts';

/** Shared per-node state every IM method receives (injected, never imported globally). */
export interface ImDeps {
  accounts: ImAccountStore;
  sessions: XmppSessionPool;
  /** How long a request waits for a stored account's session to come up on this node. Default 20 s. */
  restoreTimeoutMs?: number;
  /**
   * The node's outbound policy (the mail service's, MailService.policy: one per node).
   * HOOK, not applied yet: once XMPP hardening lands, each XmppAccountSession gets it
   * as its `policy` option, so that chat connections go where mail ones may.
   */
  policy?: DestinationPolicy;
  /** im.send's durable "sent" records (a resend of a clientId is answered, not sent). Absent: none kept. */
  sent?: ImSentRecords;
  /** The archive id of each account's last pushed im.message (archive-cursors.ts). Absent: none kept. */
  cursors?: ImArchiveCursors;
}

/**
 * The device's account and its running session. A stored account without a
 * session here (node restarted, device moved here) is brought back on demand.
 */
export async function accountSession(
  deps: ImDeps,
  ctx: MethodContext,
  accountId: string,
): Promise<{ account: Pick<ImAccount, 'id'>; session: XmppAccountSession }> {
  deps.sessions.setPusher(ctx.deviceId, ctx.push, ctx.caps ?? {});
  // The password is decrypted only when a session has to be opened, not on every request.
  deps.accounts.assertOwned(ctx.deviceId, accountId);
  const running = deps.sessions.get(accountId);
  if (running && running.state !== 'stopped') return { account: { id: accountId }, session: running };
  const account = deps.accounts.get(ctx.deviceId, accountId);
  const ms = deps.restoreTimeoutMs ?? 20_000;
  const session = await within(
    deps.sessions.open(account, { persistent: true }),
    ms,
    () =>
      new GatewayError('im.unreachable', 'the chat account is still connecting; retry shortly', {
        retryable: true,
        retryAfterMs: 2000,
      }),
  );
  return { account, session };
}

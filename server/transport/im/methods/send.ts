/**
 * im.send: answered only once the XMPP server acknowledged the message
 * (XEP-0198). clientId is the stanza id and the origin-id (XEP-0359), so a
 * resend after a failover carries the same id and is recognisable.
 *
 * A resend with the same clientId is never sent twice (issue #12):
 * - still in flight here: it joins the first (the outbox);
 * - acknowledged here before: the sent record (sent-records.ts) says so;
 * - sent by a node that died before answering, or by another node before a
 *   failover: the account's archive (XEP-0313) holds an outgoing message with
 *   that origin-id. The archive is read once per account session on this
 *   node (at its first im.send), not per send: whatever another session
 *   sent is in the archive by then, and what this one sends has its sent
 *   record (a send that failed here has the archive read again). A session
 *   still connecting (the account just moved here) is waited for, up to
 *   ONLINE_WAIT_MS within the edge's deadline; not online by then, the send
 *   is refused with the retryable im.unreachable;
 *   a server without an archive, or one slower than
 *   ARCHIVE_CHECK_TIMEOUT_MS, does not hold the send. Its newest ARCHIVE_LOOKBACK messages are enough: a resend follows
 *   its timeout within minutes.
 * A recognised resend is answered like the original, with `duplicate: true`.
 */
import type { Logger } from 'pino';
import { GatewayError } from '../../../../device-protocol/errors.ts';
import type { MethodDefinition } from '../../types.ts';
import { accountSession, type ImDeps } from '../deps.ts';
import { boundedString, objectOf } from '../../kit/method-input.ts';
import { within } from '../../kit/deadline.ts';
import { UnwrittenRecords } from '../../kit/unwritten-records.ts';
import { bareJid, imAccountIdField } from '../fields.ts';
import { hasControlChars, type XmppAccountSession } from '../xmpp-session.ts';

export interface ImSendInput {
  account: string;
  to: string;
  body: string;
  clientId: string;
}

/** Prosody's default stanza limit is 256 KiB; a chat body far below that keeps every server happy. */
export const MAX_SEND_BODY_BYTES = 64 * 1024;

const sendInput = objectOf({
  account: imAccountIdField,
  to: bareJid,
  body: boundedString(MAX_SEND_BODY_BYTES)
    .refine((body) => Buffer.byteLength(body) <= MAX_SEND_BODY_BYTES, {
      error: `is larger than ${MAX_SEND_BODY_BYTES} bytes`,
    })
    .refine((body) => !hasControlChars(body), { error: 'holds control characters XML cannot carry' }),
  clientId: boundedString(128).regex(/^[\x21-\x7e]+$/, { error: 'must be printable ASCII without spaces' }),
});

/** The newest archived messages a resend is looked for in. */
const ARCHIVE_LOOKBACK = 100;
/** How long a send waits for that read; past it, it sends (and the next send asks again). */
export const ARCHIVE_CHECK_TIMEOUT_MS = 5000;

/** The archive read took longer than ARCHIVE_CHECK_TIMEOUT_MS. */
class ArchiveSlow extends Error {}

/** How long im.send waits for a connecting session before it answers im.unreachable. */
const ONLINE_WAIT_MS = 5000;

export function imSendMethod(
  deps: ImDeps,
  opts: { archiveCheckTimeoutMs?: number } = {},
): MethodDefinition<ImSendInput> {
  const archiveCheckTimeoutMs = opts.archiveCheckTimeoutMs ?? ARCHIVE_CHECK_TIMEOUT_MS;
  /** Per account session: the recipient and origin-id of each outgoing message in the archive when it started sending. */
  const archived = new WeakMap<XmppAccountSession, Promise<Set<string>>>();
  /** Sends acknowledged here whose sent record is not written yet. */
  const unwritten = new UnwrittenRecords<true>();
  const archivedOf = async (session: XmppAccountSession, logger: Logger): Promise<Set<string>> => {
    let found = archived.get(session);
    if (!found) {
      found = within(
        archivedOrigins(session),
        archiveCheckTimeoutMs,
        () => new ArchiveSlow(`no archive answer within ${archiveCheckTimeoutMs} ms`),
      );
      archived.set(session, found);
    }
    try {
      return await found;
    } catch (err) {
      if (archived.get(session) === found) archived.delete(session);
      // Not online yet (a restarted node, a failover: the very case to check for): the device
      // asks again shortly, with the retryable error; sending blind could send twice.
      if (err instanceof GatewayError && (err.code === 'im.unreachable' || err.code === 'im.auth_failed'))
        throw err;
      logger.debug({ err: { message: (err as Error).message } }, 'archive not read for resend checks');
      // A server without an archive is not asked again this session; a slow one is, next send.
      if (!(err instanceof ArchiveSlow)) archived.set(session, Promise.resolve(new Set()));
      return new Set();
    }
  };
  return {
    method: 'im.send',
    input: sendInput,
    async handle(ctx, input) {
      const { account, session } = await accountSession(deps, ctx, input.account);
      // A device on the compact forms knows both from its request (SPEC.md §9): an empty answer.
      const answer = (duplicate: boolean) => {
        if (deps.sessions.compact(ctx.deviceId)) return undefined;
        return { account: account.id, clientId: input.clientId, ...(duplicate ? { duplicate: true } : {}) };
      };
      const recorded =
        unwritten.get(account.id, input.clientId) !== undefined ||
        deps.sent?.get(account.id, input.clientId) !== undefined;
      // Just moved here or restarted: connecting. A moment's wait, within the edge's, beats a refusal.
      if (!recorded && session.state !== 'online') {
        const left = ctx.deadline === undefined ? ONLINE_WAIT_MS : ctx.deadline - ctx.now() - 1000;
        await deps.sessions.whenOnline(account.id, Math.min(ONLINE_WAIT_MS, left));
      }
      if (recorded || (await archivedOf(session, ctx.logger)).has(originKey(input.to, input.clientId))) {
        ctx.logger.info(
          {
            deviceId: ctx.deviceId,
            account: account.id,
            clientId: input.clientId,
            from: recorded ? 'record' : 'archive',
          },
          'chat resend recognised',
        );
        return answer(true);
      }
      await session.send(input.to, input.body, input.clientId).catch((err: unknown) => {
        // The server may have taken it all the same: a resend reads the archive again.
        archived.delete(session);
        throw err;
      });
      const sent = deps.sent;
      if (sent)
        await unwritten.write(
          account.id,
          input.clientId,
          true,
          () => sent.put(account.id, input.clientId, { to: input.to, at: ctx.now() }),
          (err) => ctx.logger.warn({ err, account: account.id }, 'sent, but the sent record was not written'),
        );
      return answer(false);
    },
  };
}

function originKey(to: string, originId: string): string {
  return `${to}\u0000${originId}`;
}

/** The outgoing messages among the archive's newest, as originKeys. */
async function archivedOrigins(session: XmppAccountSession): Promise<Set<string>> {
  const page = await session.archive({ max: ARCHIVE_LOOKBACK });
  const out = new Set<string>();
  for (const m of page.messages) {
    if (m.direction === 'out' && m.originId !== undefined) out.add(originKey(m.to, m.originId));
  }
  return out;
}

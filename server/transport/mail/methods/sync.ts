/**
 * mail.sync {account, folder, limit, cursor?, before?}
 *
 * Without a cursor: the newest `limit` headers, newest first, and a cursor.
 * With a cursor: only what changed since it: new messages (`items`), flag
 * changes (`changed`, by CHANGEDSINCE when the server has CONDSTORE, else the
 * flags of every message the device may hold) and expunged UIDs (`vanished`,
 * from QRESYNC VANISHED (EARLIER), else by comparing UID SEARCH with the
 * range the device was given). A UIDVALIDITY change voids every UID: the
 * answer is a full sync with `reset: true`.
 * With `before`: an older page (UIDs below it), no cursor change.
 *
 * Ordering: the SELECT state is read first, so anything that changes while we fetch
 * carries a MODSEQ above the cursor's and is reported again next time:
 * at-least-once for flags and vanished (idempotent on the device), exactly
 * once for new messages (UIDs only grow).
 */
import type { FetchMessageObject, ImapFlow } from 'imapflow';
import { z } from 'zod';
import { compactHeaders } from '../../../../device-protocol/mail-headers.ts';
import type { Value } from '../../../../device-protocol/messages.ts';
import type { MethodDefinition } from '../../types.ts';
import { decodeCursor, encodeCursor, type SyncCursor } from '../cursor.ts';
import type { MailDeps } from '../deps.ts';
import { fetchRows } from '../fetch-offload.ts';
import { deviceFlags, fetchHeaders, fitPage, type MailHeader } from '../headers.ts';
import { integerOr, objectOf, optionalInteger, optionalString } from '../../kit/method-input.ts';
import { folderPath, MAX_UID, mailAccountId } from '../fields.ts';

export interface SyncInput {
  account: string;
  folder: string;
  limit: number;
  cursor?: string;
  before?: number;
  /** Headers as one table (`columns` + `rows`) instead of `items`: no key names repeated per message. */
  compact?: boolean;
}

const syncInput = objectOf({
  cursor: optionalString(200),
  before: optionalInteger(1, MAX_UID),
  compact: z.boolean().optional(),
  account: mailAccountId,
  folder: folderPath,
  limit: integerOr(1, 500, 50),
}).transform(
  (b): SyncInput => ({
    account: b.account,
    folder: b.folder,
    limit: b.limit,
    ...(b.cursor ? { cursor: b.cursor } : {}),
    ...(b.before === undefined ? {} : { before: b.before }),
    ...(b.compact ? { compact: true } : {}),
  }),
);

/** Past this many UIDs the no-QRESYNC expunge scan is skipped (it would cost more than a resync). */
const FALLBACK_SCAN_MAX = 200_000;

export function syncMethod(deps: MailDeps): MethodDefinition<SyncInput> {
  return {
    method: 'mail.sync',
    input: syncInput,
    async handle(ctx, input) {
      const account = deps.accounts.get(ctx.deviceId, input.account);
      // Decode before touching the server: a bad cursor is the device's error, not the server's.
      const prev = input.cursor ? decodeCursor(input.folder, input.cursor) : undefined;
      const result = await deps.sessions.use(account, 'sync', async (client) => {
        // A fresh SELECT gives this instant's UIDVALIDITY/UIDNEXT/HIGHESTMODSEQ: Dovecot answers
        // STATUS on an already selected mailbox from the session's (possibly stale, even deleted) view.
        if (client.mailbox && client.mailbox.path === input.folder) await unselect(client);
        const lock = await client.getMailboxLock(input.folder);
        try {
          return await syncFolder(client, input, prev);
        } finally {
          lock.release();
        }
      });
      // The device now holds everything up to the cursor: push what arrives in INBOX after it.
      if (deps.watchers && input.folder.toUpperCase() === 'INBOX' && typeof result.cursor === 'string') {
        const cursor = decodeCursor(input.folder, result.cursor);
        deps.watchers.watch(account, cursor.highestUid, ctx.push, { folder: input.folder, cursor });
      }
      return input.compact ? compactHeaders(result) : result;
    },
  };
}

async function syncFolder(
  client: ImapFlow,
  input: SyncInput,
  prev: SyncCursor | undefined,
): Promise<{ [key: string]: Value }> {
  const folderPath = input.folder;
  const mailbox = client.mailbox;
  if (!mailbox) throw new Error(`${folderPath} is not selected`);
  const condstore =
    client.enabled.has('CONDSTORE') && !mailbox.noModseq && mailbox.highestModseq !== undefined;
  const modseq = condstore ? String(mailbox.highestModseq) : '';
  const uidValidity = String(mailbox.uidValidity);
  const uidNext = mailbox.uidNext;
  const exists = mailbox.exists;

  if (input.before !== undefined) {
    const uids = input.before > 1 ? await searchUids(client, `1:${input.before - 1}`) : [];
    const page = uids.slice(-input.limit);
    const fetched = page.length ? await fetchHeaders(client, page, true) : [];
    const items = fitPage(fetched, 'newest');
    return { items, older: uids.length > page.length || items.length < fetched.length };
  }

  let reset = false;
  if (prev && prev.uidValidity !== uidValidity) reset = true;
  if (!prev || reset) {
    const all = exists > 0 ? await searchUids(client, '1:*') : [];
    const page = all.slice(-input.limit);
    const fetched = page.length ? await fetchHeaders(client, page, true) : [];
    // Past the page budget the oldest go: the device holds from the lowest one it was given.
    const items = fitPage(fetched, 'newest');
    const cutAt = items.length < fetched.length ? Math.min(...items.map((h) => h.uid)) : undefined;
    const highestUid = Math.max(uidNext - 1, page.at(-1) ?? 0);
    const cursor = encodeCursor(folderPath, {
      uidValidity,
      highestUid,
      modseq,
      lowestUid: cutAt ?? page[0] ?? highestUid + 1,
    });
    return { items, cursor, reset, older: all.length > page.length || cutAt !== undefined, more: false };
  }

  // New messages: oldest first up to `limit`, so that `more` + the new cursor picks up the rest.
  const fresh = uidNext - 1 > prev.highestUid ? await searchUids(client, `${prev.highestUid + 1}:*`) : [];
  const newUids = fresh.filter((u) => u > prev.highestUid);
  const fetched: MailHeader[] = newUids.length
    ? await fetchHeaders(client, newUids.slice(0, input.limit), true)
    : [];
  // Past the page budget the newest wait for the next call (`more`, the cursor stops below them).
  const items = fitPage(fetched, 'oldest');
  const take =
    items.length < fetched.length
      ? items.map((h) => h.uid).sort((a, b) => a - b)
      : newUids.slice(0, input.limit);
  const more = newUids.length > take.length;

  let changed: { uid: number; flags: string[] }[] = [];
  let vanished: number[] = [];
  if (prev.highestUid >= 1) {
    const range = `1:${prev.highestUid}`;
    if (condstore && prev.modseq !== '') {
      const seen = new Set<number>();
      const onExpunge = (ev: { path?: string; uid?: number; vanished?: boolean }) => {
        if (ev.vanished && ev.uid && ev.path === folderPath && ev.uid <= prev.highestUid) seen.add(ev.uid);
      };
      client.on('expunge', onExpunge);
      let rows: FetchMessageObject[];
      try {
        rows = await fetchRows(
          client,
          range,
          { uid: true, flags: true },
          { uid: true, changedSince: BigInt(prev.modseq) },
        );
      } finally {
        client.off('expunge', onExpunge);
      }
      changed = toFlagRows(rows, prev.highestUid);
      vanished = client.enabled.has('QRESYNC') ? [...seen] : await missingUids(client, prev);
    } else {
      // No MODSEQ: send the flags of every message the device may hold; it keeps what differs.
      const low = Math.max(1, prev.lowestUid);
      if (low <= prev.highestUid) {
        const rows = await fetchRows(
          client,
          `${low}:${prev.highestUid}`,
          { uid: true, flags: true },
          { uid: true },
        );
        changed = toFlagRows(rows, prev.highestUid);
      }
      vanished = await missingUids(client, prev);
    }
  }
  vanished.sort((a, b) => a - b);

  const highestUid = more ? take.at(-1)! : Math.max(prev.highestUid, uidNext - 1, newUids.at(-1) ?? 0);
  const cursor = encodeCursor(folderPath, {
    uidValidity,
    highestUid,
    // While new messages are still pending, keep the old MODSEQ: the next call repeats flag changes (harmless).
    modseq: more ? prev.modseq : modseq,
    lowestUid: prev.lowestUid,
  });
  return { items, changed, vanished, cursor, reset: false, more };
}

function toFlagRows(rows: FetchMessageObject[], highestUid: number): { uid: number; flags: string[] }[] {
  return rows
    .filter((r) => r.uid <= highestUid)
    .map((r) => ({ uid: r.uid, flags: deviceFlags(r.flags) }))
    .sort((a, b) => a.uid - b.uid);
}

async function searchUids(client: ImapFlow, range: string): Promise<number[]> {
  const found = await client.search({ uid: range }, { uid: true });
  return (Array.isArray(found) ? found : []).sort((a, b) => a - b);
}

/** UIDs in the device's range [lowestUid, highestUid] that no longer exist. */
async function missingUids(client: ImapFlow, prev: SyncCursor): Promise<number[]> {
  const low = Math.max(1, prev.lowestUid);
  if (low > prev.highestUid || prev.highestUid - low > FALLBACK_SCAN_MAX) return [];
  const present = new Set(await searchUids(client, `${low}:${prev.highestUid}`));
  const out: number[] = [];
  for (let u = low; u <= prev.highestUid; u++) if (!present.has(u)) out.push(u);
  return out;
}

/** UNSELECT (never CLOSE: that would expunge every \\Deleted message of the folder). */
async function unselect(client: ImapFlow): Promise<void> {
  if (client.capabilities.has('UNSELECT')) {
    await (client as unknown as { run(cmd: string, opts: object): Promise<unknown> }).run('CLOSE', {
      unselect: true,
    });
  } else {
    await client.noop();
  }
}

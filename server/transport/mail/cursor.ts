/**
 * The mail.sync cursor: an opaque string the device keeps per folder, so that
 * the transport node holds no sync state (a node that dies loses nothing).
 *
 *   s1.<base64url of "folderHash:uidValidity:highestUid:modseq:lowestUid">
 *
 * - uidValidity: the folder's UIDVALIDITY; a change means every UID is void (full resync).
 * - highestUid: every message with a higher UID is new to the device.
 * - modseq: HIGHESTMODSEQ at the last sync (CONDSTORE); empty when the server has none.
 * - lowestUid: the oldest UID the device was given by sync; bounds the no-QRESYNC expunge scan.
 * - folderHash: guards against a cursor replayed on another folder.
 */
import { createHash } from 'node:crypto';
import { GatewayError } from '../../../device-protocol/errors.ts';

export interface SyncCursor {
  uidValidity: string;
  highestUid: number;
  modseq: string;
  lowestUid: number;
}

const PREFIX = 's1.';

function folderHash(folder: string): string {
  return createHash('sha256').update(folder).digest('base64url').slice(0, 6);
}

export function encodeCursor(folder: string, c: SyncCursor): string {
  const body = [folderHash(folder), c.uidValidity, c.highestUid, c.modseq, c.lowestUid].join(':');
  return PREFIX + Buffer.from(body, 'utf8').toString('base64url');
}

export function decodeCursor(folder: string, cursor: string): SyncCursor {
  const bad = (why: string) => new GatewayError('mail.bad_cursor', `cursor ${why}`, { field: 'cursor' });
  if (typeof cursor !== 'string' || !cursor.startsWith(PREFIX) || cursor.length > 200)
    throw bad('is malformed');
  const parts = Buffer.from(cursor.slice(PREFIX.length), 'base64url').toString('utf8').split(':');
  if (parts.length !== 5) throw bad('is malformed');
  // Exactly five parts, checked above.
  const [hash, uidValidity, highest, modseq, lowest] = parts as [string, string, string, string, string];
  if (hash !== folderHash(folder)) throw bad('belongs to another folder');
  const isUint = (s: string) => /^\d{1,20}$/.test(s);
  if (!isUint(uidValidity) || !isUint(highest) || !isUint(lowest) || (modseq !== '' && !isUint(modseq))) {
    throw bad('is malformed');
  }
  const highestUid = Number(highest);
  const lowestUid = Number(lowest);
  if (highestUid > 0xffffffff || lowestUid > highestUid + 1) throw bad('is malformed');
  return { uidValidity, highestUid, modseq, lowestUid };
}

/** Compresses sorted UIDs into an IMAP sequence-set ("1:3,7,9:10"). */
export function toSequenceSet(uids: number[]): string {
  const sorted = [...new Set(uids)].sort((a, b) => a - b);
  const out: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    out.push(i === j ? String(sorted[i]) : `${sorted[i]}:${sorted[j]}`);
    i = j + 1;
  }
  return out.join(',');
}

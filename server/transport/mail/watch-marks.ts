/**
 * The INBOX watchers' durable marks (issue #12): which accounts this node
 * watches for which device, and the UID (and device cursor) up to which the
 * device was given its mail. Sub-database `mail.watch` of the node's
 * TransportStorage, keyed [deviceId, accountId].
 *
 * A transport that restarts (kill -9, a supervised child's restart) lost its
 * IDLE connections; when a device's session comes up again (the edges announce
 * every session they hold to a starting transport) its watchers start again
 * from these marks, so mail that arrived meanwhile is pushed without the
 * device syncing, and mail pushed before is not pushed again.
 *
 * A mark moves after the edge took the push (its replay buffer has it), never
 * before: a crash between the two pushes that one message again on restart,
 * with the cursor it had the first time, so the device sees it is no news
 * (SPEC.md "mail.new"). It goes when its account goes, when the watcher stops
 * because the device has no session (the device syncs when it returns, which
 * starts a new one), and after MARK_TTL_MS without a move.
 */
import { PairRecords } from '../kit/pair-records.ts';
import type { TransportStorage } from '../kit/transport-storage.ts';

export interface WatchMark {
  /** Every INBOX message up to this UID was given to the device (by sync or push). */
  uid: number;
  /** The device's INBOX cursor as it was last given (pushes carry it moved up); absent: none known. */
  cursor?: string;
  /** Date.now() of the last move. */
  at: number;
}

export const WATCH_MARK_TTL_MS = 30 * 24 * 3600 * 1000;

/**
 * A stored record (version 1, the first) as a WatchMark; undefined for one
 * this release cannot read (a newer release's, or damaged): that account is
 * then not restored, and the device's next sync starts its watcher.
 */
export function readWatchMark(raw: unknown): WatchMark | undefined {
  if (raw === null || typeof raw !== 'object') return undefined;
  const r = raw as Partial<WatchMark> & { v?: unknown };
  if (r.v !== 1) return undefined;
  if (!Number.isSafeInteger(r.uid) || (r.uid as number) < 0) return undefined;
  if (!Number.isFinite(r.at)) return undefined;
  if (r.cursor !== undefined && typeof r.cursor !== 'string') return undefined;
  return {
    uid: r.uid as number,
    at: r.at as number,
    ...(r.cursor === undefined ? {} : { cursor: r.cursor }),
  };
}

/** Keyed [deviceId, accountId]. */
export class WatchMarks extends PairRecords<WatchMark> {
  constructor(storage: TransportStorage) {
    super(storage, 'mail.watch', { version: 1, read: readWatchMark, at: (mark) => mark.at });
  }
}

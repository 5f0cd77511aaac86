/**
 * The chat push cursors of the transport (issue #12): per chat account, the
 * archive id of the last im.message its device's edge took, in the node's
 * TransportStorage (sub-database `im.cursor`, keyed [deviceId, accountId]),
 * moved into the cluster's shared state like the other pair records.
 *
 * A transport that brings a device's chat account up without the device
 * asking (it took the device over from a node that died, or the device moved
 * back to it) reads the account's archive (XEP-0313) after this id and pushes
 * what came meanwhile, each im.message with `prev` continuing the chain the
 * device holds, so the move leaves no gap and doubles nothing. Written after
 * each delivered push; a write lost in a crash costs at most that message
 * again, which the device recognises by its archive id.
 */
import { PairRecords } from '../kit/pair-records.ts';
import type { TransportStorage } from '../kit/transport-storage.ts';

export interface ImArchiveCursor {
  /** Archive id (XEP-0359 stanza-id) of the last im.message pushed. */
  last: string;
  /** Date.now() of that push. */
  at: number;
}

export const ARCHIVE_CURSOR_TTL_MS = 30 * 24 * 3600 * 1000;

/** A stored record (version 1, the first); undefined when unreadable (then no catch-up: prev null). */
export function readImArchiveCursor(raw: unknown): ImArchiveCursor | undefined {
  if (raw === null || typeof raw !== 'object') return undefined;
  const r = raw as Partial<ImArchiveCursor> & { v?: unknown };
  if (r.v !== 1 || typeof r.last !== 'string' || r.last.length === 0 || !Number.isFinite(r.at))
    return undefined;
  return { last: r.last, at: r.at as number };
}

export class ImArchiveCursors extends PairRecords<ImArchiveCursor> {
  constructor(storage: TransportStorage) {
    super(storage, 'im.cursor', { version: 1, read: readImArchiveCursor, at: (record) => record.at });
  }
}

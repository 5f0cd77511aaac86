/**
 * The durable "sent" marks of mail.send (issue #11): one per message an SMTP
 * server accepted, written right after its 250 and before the copy to Sent,
 * in the node's TransportStorage (sub-database `mail.sent`, keyed [account,
 * clientId]). A resend with the same clientId finds the mark and answers
 * `duplicate`, whatever happened after the 250: a crash, a failed APPEND, a
 * Sent folder the server does not have. The search of Sent for the
 * Message-ID stays as the fallback for sends older than their mark.
 *
 * Marks of a removed account go with it; the others after MARK_TTL_MS
 * (dropped when the service opens): a device resends within minutes, not months.
 *
 * A mark holds what the first answer said (rejected recipients, bytes, and
 * once the APPEND is done the Sent copy), so a resend is answered like the
 * original. Records carry `v`: 2 since issue #12; the unversioned marks of
 * issue #11 read as v1 (no rejected, no sentCopy: answered as none and false).
 */
import { PairRecords } from '../kit/pair-records.ts';
import type { TransportStorage } from '../kit/transport-storage.ts';

export interface SentMark {
  messageId: string;
  /** Date.now() of the 250. */
  at: number;
  bytes: number;
  /** Recipients the SMTP server refused while taking the message. */
  rejected?: string[];
  /** The copy to Sent was made. */
  sentCopy?: boolean;
}

export const MARK_TTL_MS = 30 * 24 * 3600 * 1000;

/** A stored mark of any known version (v1: issue #11's, without `v`); undefined when unreadable. */
export function readSentMark(raw: unknown): SentMark | undefined {
  if (raw === null || typeof raw !== 'object') return undefined;
  const r = raw as Partial<SentMark> & { v?: unknown };
  if (r.v !== undefined && r.v !== 1 && r.v !== 2) return undefined;
  if (typeof r.messageId !== 'string' || !Number.isFinite(r.at) || !Number.isFinite(r.bytes))
    return undefined;
  const rejected = Array.isArray(r.rejected) ? r.rejected.filter((x) => typeof x === 'string') : undefined;
  return {
    messageId: r.messageId,
    at: r.at as number,
    bytes: r.bytes as number,
    ...(rejected === undefined ? {} : { rejected }),
    ...(typeof r.sentCopy === 'boolean' ? { sentCopy: r.sentCopy } : {}),
  };
}

export class SentMarks extends PairRecords<SentMark> {
  constructor(storage: TransportStorage) {
    super(storage, 'mail.sent', { version: 2, read: readSentMark, at: (mark) => mark.at });
  }
}

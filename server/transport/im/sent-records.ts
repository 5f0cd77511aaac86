/**
 * The durable "sent" records of im.send (issue #12): one per message the XMPP
 * server acknowledged (XEP-0198), in the node's TransportStorage (sub-database
 * `im.sent`, keyed [account, clientId]). A resend with the same clientId after
 * the device's request timed out finds the record and is answered without a
 * second message.
 *
 * What a record cannot cover (the node died between the server taking the
 * message and the record, or the resend reaches another node after a
 * failover) the send method finds in the account's archive by origin-id
 * (methods/send.ts).
 *
 * Records of a removed account go with it; the others after SENT_RECORD_TTL_MS
 * (dropped when the service opens): a device resends within minutes.
 */
import { PairRecords } from '../kit/pair-records.ts';
import type { TransportStorage } from '../kit/transport-storage.ts';

export interface ImSentRecord {
  /** Bare JID the message went to. */
  to: string;
  /** Date.now() of the server's acknowledgement. */
  at: number;
}

export const SENT_RECORD_TTL_MS = 7 * 24 * 3600 * 1000;

/** A stored record (version 1, the first); undefined when unreadable (then the archive decides). */
export function readImSentRecord(raw: unknown): ImSentRecord | undefined {
  if (raw === null || typeof raw !== 'object') return undefined;
  const r = raw as Partial<ImSentRecord> & { v?: unknown };
  if (r.v !== 1 || typeof r.to !== 'string' || !Number.isFinite(r.at)) return undefined;
  return { to: r.to, at: r.at as number };
}

export class ImSentRecords extends PairRecords<ImSentRecord> {
  constructor(storage: TransportStorage) {
    super(storage, 'im.sent', { version: 1, read: readImSentRecord, at: (record) => record.at });
  }
}

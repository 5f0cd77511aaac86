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
 */
import type { Database } from 'lmdb';
import type { TransportStorage } from '../kit/transport-storage.ts';

export interface SentMark {
  messageId: string;
  /** Date.now() of the 250. */
  at: number;
  bytes: number;
}

type MarkKey = [accountId: string, clientId: string];

export const MARK_TTL_MS = 30 * 24 * 3600 * 1000;

export class SentMarks {
  readonly #db: Database<SentMark, MarkKey>;

  constructor(storage: TransportStorage) {
    this.#db = storage.database<SentMark, MarkKey>('mail.sent');
  }

  get(accountId: string, clientId: string): SentMark | undefined {
    return this.#db.get([accountId, clientId]);
  }

  /** Resolves once the mark is committed to disk: after that, a crash cannot lose it. */
  async put(accountId: string, clientId: string, mark: SentMark): Promise<void> {
    await this.#db.put([accountId, clientId], mark);
  }

  async removeAccount(accountId: string): Promise<void> {
    await this.#db.transaction(() => {
      for (const key of this.#db.getKeys({ start: [accountId], end: [accountId, '\uffff'] })) {
        this.#db.removeSync(key);
      }
    });
  }

  /** Drops marks older than `before`; returns how many. */
  async prune(before: number): Promise<number> {
    let dropped = 0;
    await this.#db.transaction(() => {
      for (const { key, value } of this.#db.getRange({})) {
        if (value.at < before) {
          this.#db.removeSync(key);
          dropped++;
        }
      }
    });
    return dropped;
  }
}

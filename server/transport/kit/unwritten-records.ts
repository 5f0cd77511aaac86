/**
 * Records of sends already acknowledged to a device whose write to the
 * store is under way or failed (issue #12). The sent records of mail.send and
 * im.send go to the cluster's shared state, which can be slow for seconds
 * (JetStream electing leaders after an outage): the send is done, so its
 * answer waits at most `waitMs` for the write, and until the write succeeds
 * a resend on this node finds the record here. A write that fails keeps it
 * here for good (a few bytes per send, only while the store fails).
 */
import { orAfter } from './deadline.ts';

export const SENT_RECORD_WAIT_MS = 500;

export class UnwrittenRecords<T> {
  readonly #records = new Map<string, T>();
  readonly #waitMs: number;

  constructor(waitMs = SENT_RECORD_WAIT_MS) {
    this.#waitMs = waitMs;
  }

  get(owner: string, id: string): T | undefined {
    return this.#records.get(key(owner, id));
  }

  /** Holds `record` until `write` succeeds; resolves when it did, failed (reported), or after waitMs. */
  async write(
    owner: string,
    id: string,
    record: T,
    write: () => Promise<unknown>,
    failed: (err: unknown) => void,
  ): Promise<void> {
    const k = key(owner, id);
    this.#records.set(k, record);
    const written = write().then(() => {
      if (this.#records.get(k) === record) this.#records.delete(k);
    }, failed);
    await orAfter(written, this.#waitMs, undefined);
  }
}

const key = (owner: string, id: string) => `${owner}\u0000${id}`;

/**
 * Audit entries written by the registry in the same lmdb transaction as the
 * change they record: an import's result, and every change made from the
 * CLI. The audit log itself lives in the admin role's records store
 * (`<data>/records`, another environment, which a transaction cannot span),
 * so entries wait here until the admin role relays them (admin/audit-relay.ts):
 * a crash can delay an entry, never lose it nor keep it for a change that did
 * not happen.
 *
 * A relay claims entries for a lease before copying them, so that two admin
 * processes on one data directory do not both copy one; one that dies
 * mid-copy leaves its claims to expire, and the next relay checks the audit
 * log before adding (at, actor, action and target identify an entry).
 */
import { randomBytes } from 'node:crypto';
import type { Database } from 'lmdb';
import type { Device } from './records.ts';

/** Who made a change: an API user, or `cli:<os user>` with role `cli`. */
export interface AuditActor {
  actor: string;
  role: string;
  address?: string;
}

/** An audit entry as the audit log keeps it (admin/records-store.ts AuditEntry), without its id. */
export type OutboxEntry = AuditActor & {
  at: number;
  action: string;
  target: string;
  before?: unknown;
  after?: unknown;
};

type OutboxKey = [number, string];
type StoredEntry = OutboxEntry & { claimedUntil?: number };

/** A device as the admin API and the audit log show it: the registry's `profile` is the service profile. */
export function deviceAuditView(d: Device): Record<string, unknown> {
  const { profile, ...rest } = d;
  return profile === undefined ? rest : { ...rest, serviceProfile: profile };
}

export class AuditOutbox {
  private seq = 0;

  constructor(
    private readonly db: Database<StoredEntry, OutboxKey>,
    private readonly now: () => number,
  ) {}

  /** Adds an entry; call it inside the write transaction of the change it records. */
  put(
    who: AuditActor,
    action: string,
    target: string,
    before?: unknown,
    after?: unknown,
    at = this.now(),
  ): void {
    const entry: StoredEntry = {
      at,
      actor: who.actor,
      role: who.role,
      ...(who.address === undefined ? {} : { address: who.address }),
      action,
      target,
      ...(before === undefined ? {} : { before }),
      ...(after === undefined ? {} : { after }),
    };
    // Entries of one process keep their order within a millisecond; the random part keeps processes apart.
    const seq = String(++this.seq).padStart(12, '0');
    this.db.put([at, `${seq}.${randomBytes(4).toString('hex')}`], entry);
  }

  /** Up to `limit` unclaimed entries (oldest first), claimed for `leaseMs`. */
  async claim(limit: number, leaseMs: number): Promise<Array<{ key: OutboxKey; entry: OutboxEntry }>> {
    const now = this.now();
    return this.db.transaction(() => {
      const out: Array<{ key: OutboxKey; entry: OutboxEntry }> = [];
      for (const { key, value } of this.db.getRange({})) {
        if ((value.claimedUntil ?? 0) > now) continue;
        this.db.put(key, { ...value, claimedUntil: now + leaseMs });
        const { claimedUntil: _c, ...entry } = value;
        out.push({ key, entry });
        if (out.length >= limit) break;
      }
      return out;
    });
  }

  async remove(keys: OutboxKey[]): Promise<void> {
    if (keys.length === 0) return;
    await this.db.transaction(() => {
      for (const key of keys) this.db.remove(key);
    });
  }

  /** Resolves once the entries put so far are committed (outside a transaction a put is written in the background). */
  async committed(): Promise<void> {
    await this.db.committed;
  }

  /** Entries waiting, claimed or not. */
  list(): OutboxEntry[] {
    return [...this.db.getRange({ snapshot: true })].map(({ value }) => {
      const { claimedUntil: _c, ...entry } = value;
      return entry;
    });
  }
}

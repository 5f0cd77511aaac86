/**
 * Moves the audit entries the registry wrote in its own transactions (the
 * CLI's changes, import jobs: server/store/audit-outbox.ts) into the audit
 * log of the records store, where GET /api/v1/audit reads them. Runs every
 * few seconds, and on demand before the audit log is read, so that a change
 * shows there at once.
 *
 * An entry is claimed for a lease, copied, then removed from the outbox. A
 * relay that dies between copying and removing leaves the claim to expire;
 * the next one finds the copy in the audit log (same time, actor, action and
 * target) and does not add it twice.
 */
import type { Logger } from 'pino';
import type { Registry } from '../server/index.ts';
import type { RecordsStore } from './records-store.ts';

const BATCH = 200;
const LEASE_MS = 60_000;

export interface AuditRelay {
  /** Relays what waits now; resolves when it is in the audit log. */
  drain(): Promise<number>;
  /** Stops the timer and waits for a drain under way. */
  close(): Promise<void>;
}

export function startAuditRelay(o: {
  registry: Registry;
  records: RecordsStore;
  logger: Logger;
  intervalMs?: number;
}): AuditRelay {
  const { registry, records } = o;
  const once = async (): Promise<number> => {
    let moved = 0;
    for (;;) {
      const claimed = await registry.auditOutbox.claim(BATCH, LEASE_MS);
      for (const { entry } of claimed) {
        const copied = records
          .queryAudit({
            from: entry.at,
            to: entry.at,
            actor: entry.actor,
            action: entry.action,
            target: entry.target,
            limit: 100,
          })
          .items.some((e) => e.at === entry.at && e.action === entry.action && e.target === entry.target);
        if (!copied) await records.addAudit(entry);
        moved++;
      }
      await registry.auditOutbox.remove(claimed.map((c) => c.key));
      if (claimed.length < BATCH) return moved;
    }
  };
  // One drain at a time; a drain asked for while one runs starts after it, so it sees entries written meanwhile.
  let queue: Promise<number> = Promise.resolve(0);
  const drain = () => {
    queue = queue.then(once, once);
    return queue;
  };
  const timer = setInterval(() => {
    drain().catch((err) => o.logger.warn({ err }, 'could not relay audit entries; will retry'));
  }, o.intervalMs ?? 2000);
  timer.unref();
  drain().catch((err) => o.logger.warn({ err }, 'could not relay audit entries; will retry'));
  return {
    drain,
    async close() {
      clearInterval(timer);
      await queue.catch(() => undefined);
    },
  };
}

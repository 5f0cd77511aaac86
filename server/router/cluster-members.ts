/**
 * The membership of a node in cluster mode: the shared `members` table
 * (a JetStream KV bucket with the cluster tables' replicas) opened in the
 * background on the process's cluster state; once it is open the node's
 * Membership reads it (Membership.attachTable) and, unless the process is a
 * supervised role's child (the primary's record speaks for it), writes this
 * node's record every second. Until then the membership is the bus
 * heartbeats', as on a single node.
 */
import type { Logger } from 'pino';
import type { NodeHeartbeat } from '../bus/bus.ts';
import type { Config } from '../config.ts';
import { leasedOpener } from '../store/shared/cluster.ts';
import { attemptWorthWarning, openInBackground, type SharedTable } from '../store/shared/table.ts';
import { type Membership, readMemberRecord, startMemberRecord } from './membership.ts';

export const MEMBERS_TABLE = 'members';

export interface ClusterMembers {
  /** This node writes its record (its heartbeats then say so: `memberTable`). */
  writing(): boolean;
  /** Writes the record now (roles or draining changed). */
  announce(): void;
  /** Removes this node's record: the others drop it at once. */
  leave(): Promise<void>;
  close(): Promise<void>;
}

export function clusterMembers(options: {
  config: Pick<Config, 'bus' | 'stateReplicas'>;
  nodeId: string;
  logger: Logger;
  membership: Membership;
  /** This node's record; absent in a process that does not write one. */
  heartbeat?: () => NodeHeartbeat;
  intervalMs?: number;
}): ClusterMembers {
  const { config, nodeId, logger, membership, heartbeat } = options;
  let record: ReturnType<typeof startMemberRecord> | undefined;
  let writes = false;
  let left = false;
  const opener = leasedOpener(config, nodeId, logger, (state) =>
    state.table<NodeHeartbeat>(MEMBERS_TABLE, {
      read: readMemberRecord,
      onBadRecord: (key, err) => logger.warn({ key, err }, 'members table: an unreadable record ignored'),
    }),
  );
  const opening = openInBackground(opener.open, {
    opened: (rows: SharedTable<NodeHeartbeat>) => {
      membership.attachTable(rows, options.intervalMs === undefined ? {} : { probeMs: options.intervalMs });
      if (heartbeat && !left) {
        writes = true;
        record = startMemberRecord(rows, heartbeat, {
          logger,
          ...(options.intervalMs === undefined ? {} : { intervalMs: options.intervalMs }),
        });
      }
      logger.info('membership: the shared members table');
    },
    failed: (err, attempt) =>
      logger[attemptWorthWarning(attempt) ? 'warn' : 'debug'](
        { err, attempt },
        'the members table is not open yet',
      ),
  });
  return {
    writing: () => writes && !left,
    announce: () => record?.write(),
    async leave() {
      left = true;
      await record?.stop();
    },
    async close() {
      left = true;
      opening.cancel();
      await record?.stop();
      await opener.close();
    },
  };
}

/**
 * The cluster's shared state for the roles of one process: a JetStream KV
 * SharedState on the config's NATS servers (cluster mode: `bus` names NATS
 * servers), opened once per process and shared by its roles (an admin and an
 * edge in one process use one connection), closed with its last user.
 *
 * Replicas: config `stateReplicas` (MMGW_STATE_REPLICAS), else 3 when the bus
 * URL lists at least 3 servers, else 1. Set it on a cluster whose nodes list
 * fewer servers than the cluster has.
 */
import type { Logger } from 'pino';
import type { Config } from '../../config.ts';
import { NatsKvSharedState } from './nats-kv.ts';
import type { SharedState } from './table.ts';

export function isClusterMode(config: Pick<Config, 'bus'>): boolean {
  return config.bus !== 'inproc';
}

export function stateServers(config: Pick<Config, 'bus'>): string[] {
  return config.bus
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

export function stateReplicas(config: Pick<Config, 'bus' | 'stateReplicas'>): number {
  return config.stateReplicas ?? (stateServers(config).length >= 3 ? 3 : 1);
}

interface Shared {
  opening: Promise<NatsKvSharedState>;
  users: number;
}

const open = new Map<string, Shared>();

export interface ClusterStateLease {
  state: SharedState;
  release(): Promise<void>;
}

/** The process's shared state for this config; each lease is released once. */
export async function leaseClusterState(
  config: Pick<Config, 'bus' | 'stateReplicas'>,
  nodeId: string,
  logger?: Logger,
): Promise<ClusterStateLease> {
  const servers = stateServers(config);
  const replicas = stateReplicas(config);
  const id = `${servers.join(',')}#${replicas}`;
  let shared = open.get(id);
  if (!shared) {
    const opening = NatsKvSharedState.connect({
      servers,
      replicas,
      name: nodeId,
      ...(logger ? { logger } : {}),
    });
    shared = { opening, users: 0 };
    open.set(id, shared);
    opening.catch(() => open.delete(id));
  }
  shared.users += 1;
  const entry = shared;
  let state: NatsKvSharedState;
  try {
    state = await entry.opening;
  } catch (err) {
    entry.users -= 1;
    throw err;
  }
  let released = false;
  return {
    state,
    async release() {
      if (released) return;
      released = true;
      entry.users -= 1;
      if (entry.users === 0) {
        open.delete(id);
        await state.close();
      }
    },
  };
}

/**
 * An opener for openInBackground: leases the process's cluster state and
 * opens something on it; close() gives the lease back (also when the open
 * finishes after close).
 */
export function leasedOpener<T>(
  config: Pick<Config, 'bus' | 'stateReplicas'>,
  nodeId: string,
  logger: Logger | undefined,
  openOn: (state: SharedState) => Promise<T>,
): { open(): Promise<T>; close(): Promise<void> } {
  let lease: ClusterStateLease | undefined;
  let closed = false;
  return {
    async open() {
      const got = await leaseClusterState(config, nodeId, logger);
      try {
        if (closed) throw new Error('closed while opening');
        const value = await openOn(got.state);
        if (closed) throw new Error('closed while opening');
        lease = got;
        return value;
      } catch (err) {
        await got.release();
        throw err;
      }
    },
    async close() {
      closed = true;
      await lease?.release();
    },
  };
}

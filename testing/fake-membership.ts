/**
 * A stand-in for Membership in unit tests of what reads it (node monitor,
 * alarm cluster watch): the test decides who is alive, and heartbeats are
 * built with defaults.
 */
import type { NodeHeartbeat } from '../server/bus/bus.ts';
import type { Membership } from '../server/router/membership.ts';

export function fakeMembership() {
  let live: NodeHeartbeat[] = [];
  const listeners = new Set<() => void>();
  return {
    membership: {
      nodes: () => live,
      onChange(l: () => void) {
        listeners.add(l);
        return () => listeners.delete(l);
      },
    } as unknown as Membership,
    set(nodes: NodeHeartbeat[]) {
      live = nodes;
      for (const l of listeners) l();
    },
  };
}

export const heartbeat = (nodeId: string, over: Partial<NodeHeartbeat> = {}): NodeHeartbeat => ({
  nodeId,
  roles: ['edge'],
  release: '1',
  startedAt: 1000,
  ttlMs: 3500,
  draining: false,
  sessions: 3,
  rssBytes: 100,
  cpuSeconds: 1,
  ...over,
});

/**
 * A stand-in for Membership in unit tests of what reads it (node monitor,
 * alarm cluster watch): the test decides who is alive, and heartbeats are
 * built with defaults. manualMembership() is the real one with a hand-moved clock.
 */
import type { NodeHeartbeat } from '../server/bus/bus.ts';
import { InProcessBus } from '../server/bus/inproc.ts';
import { Membership } from '../server/router/membership.ts';

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

/** A real Membership on an in-process bus with a clock moved by hand, its changes recorded (membership unit tests). */
export function manualMembership() {
  const bus = new InProcessBus();
  const clock = { t: 1_000_000, now: () => clock.t };
  const membership = new Membership({ bus, clock, sweepMs: 60_000 });
  membership.start();
  const changes: string[][] = [];
  membership.onChange((nodes) => changes.push(nodes.map((n) => n.nodeId)));
  return { bus, clock, membership, changes };
}

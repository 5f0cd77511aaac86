/**
 * Who is alive: every node publishes a NodeHeartbeat on Subjects.heartbeat
 * about every second; a node not heard from within its own ttlMs is out.
 * The list feeds the RendezvousRouter (transport nodes) and the admin's node
 * monitor. Works the same over every bus, so cluster mode needs nothing more
 * than the NATS bus.
 *
 * While this node's own bus connection is down (Bus.onConnection) it hears
 * nobody, which says nothing about the others: nobody is swept out then, and
 * once the connection is back every member has a full TTL to be heard again.
 * Without this a bus outage emptied every node's membership (no transport to
 * route to, every transport "gone" to its peers) for as long as it lasted
 * and a heartbeat after.
 */
import type { Logger } from 'pino';
import { z } from 'zod';
import { type Bus, type NodeHeartbeat, Subjects, type Subscription } from '../bus/bus.ts';

/** A sweep later than its interval by more than this means this process stalled. */
export const STALL_MS = 1000;
export interface Clock {
  now(): number;
}

const systemClock: Clock = { now: () => Date.now() };

export interface MembershipOptions {
  bus: Bus;
  /** Injected for tests; default Date.now. */
  clock?: Clock;
  /** How often expired nodes are swept out (default 250 ms). */
  sweepMs?: number;
  logger?: Logger;
}

interface Member {
  heartbeat: NodeHeartbeat;
  seenAt: number;
}

/**
 * What decides membership; other fields are read where they are shown. Loose, so that a node of a newer
 * release with more fields still counts.
 */
const heartbeatShape = z.looseObject({
  nodeId: z.string().min(1),
  roles: z.array(z.string()),
  ttlMs: z.number(),
});

function isHeartbeat(x: unknown): x is NodeHeartbeat {
  return heartbeatShape.safeParse(x).success;
}

/** Does a node with these roles serve `role`? 'all' serves every role. */
export function servesRole(roles: readonly string[], role: string): boolean {
  return roles.includes(role) || roles.includes('all');
}

export class Membership {
  private readonly members = new Map<string, Member>();
  private readonly listeners = new Set<(nodes: NodeHeartbeat[]) => void>();
  private readonly bus: Bus;
  private readonly clock: Clock;
  private readonly sweepMs: number;
  private readonly logger: Logger | undefined;
  private subscription: Subscription | undefined;
  private timer: ReturnType<typeof setInterval> | undefined;
  private stopWatchingBus: (() => void) | undefined;
  /** This node's bus connection is down: what it knows is stale, not gone. */
  private deaf = false;
  /** When the sweep timer last ran (undefined before start(): sweeps called by hand). */
  private lastSweepAt: number | undefined;

  constructor(options: MembershipOptions) {
    this.bus = options.bus;
    this.clock = options.clock ?? systemClock;
    this.sweepMs = options.sweepMs ?? 250;
    this.logger = options.logger;
  }

  start(): void {
    if (this.subscription) return;
    this.subscription = this.bus.subscribe(Subjects.heartbeat, (msg) => {
      if (isHeartbeat(msg.data)) this.observe(msg.data);
      else this.logger?.warn({ subject: msg.subject }, 'malformed heartbeat ignored');
    });
    this.stopWatchingBus = this.bus.onConnection?.((up) => this.connection(up));
    this.lastSweepAt = this.clock.now();
    this.timer = setInterval(() => this.sweep(), this.sweepMs);
    this.timer.unref();
  }

  /** This node's bus connection went down (false) or came back (true). */
  connection(up: boolean): void {
    if (up === !this.deaf) return;
    this.deaf = !up;
    if (!up) return;
    // Heard again from now on: each member gets its whole TTL to be heard.
    const now = this.clock.now();
    for (const m of this.members.values()) m.seenAt = Math.max(m.seenAt, now);
  }

  stop(): void {
    this.subscription?.unsubscribe();
    this.subscription = undefined;
    this.stopWatchingBus?.();
    this.stopWatchingBus = undefined;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Live nodes, sorted by node id; only those serving `role` when given. */
  nodes(role?: string): NodeHeartbeat[] {
    const out: NodeHeartbeat[] = [];
    for (const m of this.members.values()) {
      if (role === undefined || servesRole(m.heartbeat.roles, role)) out.push(m.heartbeat);
    }
    return out.sort((a, b) => (a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0));
  }

  /** Called when a node joins, leaves, starts draining or changes roles (not on every heartbeat). */
  onChange(listener: (nodes: NodeHeartbeat[]) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Applies one heartbeat; public so a node can count itself before its first heartbeat comes back. */
  observe(heartbeat: NodeHeartbeat): void {
    const previous = this.members.get(heartbeat.nodeId);
    if (heartbeat.ttlMs <= 0) {
      // A node saying goodbye: out at once, no waiting for the TTL.
      if (previous && this.members.delete(heartbeat.nodeId)) this.changed();
      return;
    }
    this.members.set(heartbeat.nodeId, { heartbeat, seenAt: this.clock.now() });
    if (
      previous === undefined ||
      previous.heartbeat.draining !== heartbeat.draining ||
      previous.heartbeat.startedAt !== heartbeat.startedAt ||
      previous.heartbeat.roles.join(',') !== heartbeat.roles.join(',')
    ) {
      this.changed();
    }
  }

  /**
   * Drops every node whose TTL has passed since its last heartbeat. A sweep
   * that runs late (this process was stalled: CPU starved, a long GC, SIGSTOP)
   * first credits every member with the stall: the heartbeats of that time
   * wait unread in the socket, and timers run before I/O, so the silence is
   * this node's, not theirs. Without it a node that froze for a TTL drops
   * every other node, itself included, on waking.
   */
  sweep(): void {
    const now = this.clock.now();
    if (this.deaf) {
      // Deaf is not stalled: the reconnect gives every member its whole TTL.
      if (this.lastSweepAt !== undefined) this.lastSweepAt = now;
      return;
    }
    if (this.lastSweepAt !== undefined) {
      const stalledMs = now - this.lastSweepAt - this.sweepMs;
      this.lastSweepAt = now;
      if (stalledMs > STALL_MS) {
        for (const m of this.members.values()) m.seenAt += stalledMs;
        this.logger?.info({ stalledMs }, 'membership sweep ran late: the stall counts for nobody');
      }
    }
    let removed = false;
    for (const [id, m] of this.members) {
      if (now - m.seenAt > m.heartbeat.ttlMs) {
        this.members.delete(id);
        this.logger?.info({ nodeId: id }, 'node missed its heartbeats: out of membership');
        removed = true;
      }
    }
    if (removed) this.changed();
  }

  private changed(): void {
    const nodes = this.nodes();
    for (const listener of this.listeners) {
      try {
        listener(nodes);
      } catch (err) {
        this.logger?.error({ err }, 'membership listener threw');
      }
    }
  }
}

/**
 * Publishes this node's heartbeat now and every `intervalMs`. The returned
 * stop() publishes a last heartbeat with draining set and ttlMs 0, so peers
 * drop the node at once instead of after its TTL.
 */
export function startHeartbeat(bus: Bus, info: () => NodeHeartbeat, intervalMs = 1000): () => void {
  const beat = (last: boolean): void => {
    try {
      bus.publish(Subjects.heartbeat, last ? { ...info(), draining: true, ttlMs: 0 } : info());
    } catch {
      // The bus is closed or reconnecting: the next beat will try again.
    }
  };
  beat(false);
  const timer = setInterval(() => beat(false), intervalMs);
  timer.unref();
  let stopped = false;
  return () => {
    if (stopped) return;
    stopped = true;
    clearInterval(timer);
    beat(true);
  };
}

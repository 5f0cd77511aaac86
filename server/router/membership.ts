/**
 * Who is alive: every node publishes a NodeHeartbeat on Subjects.heartbeat
 * about every second; a node not heard from within its own ttlMs is out.
 * The list feeds the RendezvousRouter (transport nodes) and the admin's node
 * monitor. That is the single-node gateway's membership (in-process bus).
 *
 * In cluster mode the membership is a shared table (attachTable(); each node
 * writes its row with startMemberRecord(), wired by cluster-members.ts): each
 * node's heartbeat, rewritten about every second and removed when it stops.
 * A row that did not change for its TTL is out, judged by this node's clock
 * against a probe of the store (see attachTable), never the writer's clock.
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
import { GatewayError } from '../../device-protocol/errors.ts';
import { type Bus, type NodeHeartbeat, Subjects, type Subscription } from '../bus/bus.ts';
import type { SharedTable } from '../store/shared/table.ts';

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
  /** The shared table's revision of the record (table members); undefined: heard on the bus. */
  revision?: number;
  /** A table member: when its last heartbeat on the bus was heard (a sign of life, by this node's clock). */
  heardAt?: number;
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

/** The reader of the members table: the same check as a heartbeat on the bus. */
export function readMemberRecord(raw: unknown): NodeHeartbeat {
  const parsed = heartbeatShape.safeParse(raw);
  if (!parsed.success) {
    throw new GatewayError('registry.bad_record', `not a member record: ${parsed.error.issues[0]?.message}`);
  }
  return parsed.data as unknown as NodeHeartbeat;
}

/** Does a node with these roles serve `role`? 'all' serves every role. */
export function servesRole(roles: readonly string[], role: string): boolean {
  return roles.includes(role) || roles.includes('all');
}

/**
 * Probes answered further apart than this × probeMs: the store was unreachable, or the copy far
 * behind, between them; every member then gets a whole TTL. With rows written every second and a
 * TTL of 3.5 s, a shorter gap cannot have made a live row look silent for a TTL.
 */
const PROBE_GAP_FACTOR = 2;

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
  /** Cluster mode: the members table, and what this node knows of how current its copy is. */
  private table:
    | {
        rows: SharedTable<NodeHeartbeat>;
        stopWatch: () => void;
        probeMs: number;
        probing: boolean;
        timer: ReturnType<typeof setInterval> | undefined;
        /** The copy held every write stored before this time (the last probe answered). */
        currentAt: number;
      }
    | undefined;

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

  /**
   * Cluster mode: the members table becomes the membership. Its rows count at once (a node that
   * starts needs no heartbeat round), its watch brings joins, changes and removals (a clean stop
   * removes the row: out at once), and from now on a heartbeat on the bus of a node that writes the
   * table (`memberTable`) counts only as a goodbye, or as a sign of life of a member with a row
   * (its row's TTL is then also kept by the heartbeats: a slow table drops nobody alive); one of an
   * older release still counts.
   *
   * A row is out when it did not change for its TTL while this node's copy was current: every
   * `probeMs` this node asks whether its copy holds every write the store had then (caughtUp()). A
   * row is dropped only when such a probe, asked more than a TTL after the row last changed, was
   * answered, so a stalled watch, a dead server or this node's own lost connection drop nobody:
   * they only hold the answer back. When answers come back after a gap (PROBE_GAP_FACTOR × probeMs:
   * nobody could write, or this copy was far behind), every row gets a whole TTL from then.
   */
  attachTable(rows: SharedTable<NodeHeartbeat>, options: { probeMs?: number; timer?: boolean } = {}): void {
    if (this.table) return;
    const now = this.clock.now();
    const probeMs = options.probeMs ?? 1000;
    this.table = {
      rows,
      probeMs,
      probing: false,
      timer: undefined,
      currentAt: now,
      stopWatch: rows.watch((change) => {
        if (change.value) this.observeRow(change.key, change.value, change.revision);
        else this.leave(change.key, 'removed from the members table');
      }),
    };
    // Loaded as the table opened: current as of now.
    for (const entry of rows.entries()) this.observeRow(entry.key, entry.value, entry.revision);
    // Heard on the bus from a node that writes the table: its row decides from now on.
    for (const [id, m] of this.members) {
      if (m.revision === undefined && m.heartbeat.memberTable && !rows.get(id)) this.leave(id, 'has no row');
    }
    if (options.timer === false) return;
    this.table.timer = setInterval(() => void this.probe(), probeMs);
    this.table.timer.unref();
    void this.probe();
  }

  /** This node's bus connection went down (false) or came back (true). */
  connection(up: boolean): void {
    if (up === !this.deaf) return;
    this.deaf = !up;
    if (!up) return;
    // Heard again from now on: each member gets its whole TTL to be heard.
    this.credit(this.clock.now());
  }

  stop(): void {
    this.subscription?.unsubscribe();
    this.subscription = undefined;
    this.stopWatchingBus?.();
    this.stopWatchingBus = undefined;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (this.table) {
      this.table.stopWatch();
      clearInterval(this.table.timer);
      this.table = undefined;
    }
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
    if (heartbeat.ttlMs <= 0) {
      // A node saying goodbye: out at once, no waiting for the TTL.
      this.leave(heartbeat.nodeId, 'said goodbye');
      return;
    }
    // Cluster mode: a node that writes the members table is a member by its row only; its heartbeat
    // on the bus is a sign of life of a member that has a row. After every NATS server was down,
    // JetStream writes lagged for seconds at a time (rows went stale, devices moved back and forth
    // between live transports), while core NATS carried the heartbeats at once.
    if (this.table && heartbeat.memberTable) {
      const m = this.members.get(heartbeat.nodeId);
      if (m?.revision !== undefined && m.heartbeat.startedAt === heartbeat.startedAt)
        m.heardAt = this.clock.now();
      return;
    }
    this.put(heartbeat, undefined);
  }

  private observeRow(key: string, row: NodeHeartbeat, revision: number): void {
    if (row.nodeId !== key) {
      this.logger?.warn({ key, nodeId: row.nodeId }, 'members table: a row under another node id ignored');
      return;
    }
    if (row.ttlMs <= 0) this.leave(key, 'said goodbye');
    else this.put(row, revision);
  }

  private put(heartbeat: NodeHeartbeat, revision: number | undefined): void {
    const previous = this.members.get(heartbeat.nodeId);
    this.members.set(heartbeat.nodeId, {
      heartbeat,
      seenAt: this.clock.now(),
      ...(revision === undefined ? {} : { revision }),
    });
    if (
      previous === undefined ||
      previous.heartbeat.draining !== heartbeat.draining ||
      previous.heartbeat.startedAt !== heartbeat.startedAt ||
      previous.heartbeat.roles.join(',') !== heartbeat.roles.join(',')
    ) {
      this.changed();
    }
  }

  private leave(nodeId: string, why: string): void {
    if (!this.members.delete(nodeId)) return;
    this.logger?.info({ nodeId }, `node ${why}: out of membership`);
    this.changed();
  }

  /** Asks whether the copy holds what the store has (one question at a time; see attachTable). Its timer calls it. */
  probe(): Promise<void> {
    const t = this.table;
    if (!t || t.probing) return Promise.resolve();
    t.probing = true;
    const at = this.clock.now();
    return t.rows.caughtUp().then(
      () => {
        t.probing = false;
        if (this.table !== t) return;
        const gapMs = at - t.currentAt;
        t.currentAt = Math.max(t.currentAt, at);
        if (gapMs > PROBE_GAP_FACTOR * t.probeMs) {
          this.logger?.info(
            { gapMs },
            'members table current again after a gap: every member gets its whole TTL',
          );
          this.credit(this.clock.now());
        }
        this.sweep();
      },
      () => {
        // Unreachable, or the copy behind: nothing can be judged until a probe is answered.
        t.probing = false;
      },
    );
  }

  private credit(now: number): void {
    for (const m of this.members.values()) m.seenAt = Math.max(m.seenAt, now);
  }

  /**
   * Drops every node whose TTL has passed since its last heartbeat. A sweep
   * that runs late (this process was stalled: CPU starved, a long GC, SIGSTOP)
   * first credits every member with the stall: the heartbeats of that time
   * wait unread in the socket, and timers run before I/O, so the silence is
   * this node's, not theirs. Without it a node that froze for a TTL drops
   * every other node, itself included, on waking.
   *
   * A member from the table is judged against the table's last answered probe
   * instead of now (attachTable); one that is dropped so is removed from the
   * table too, at the revision seen (a node that wrote since keeps its row).
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
      const judgedAt = m.revision === undefined ? now : (this.table?.currentAt ?? now);
      if (judgedAt - m.seenAt <= m.heartbeat.ttlMs) continue;
      if (m.heardAt !== undefined && now - m.heardAt <= m.heartbeat.ttlMs) continue;
      this.members.delete(id);
      this.logger?.info({ nodeId: id }, 'node missed its heartbeats: out of membership');
      removed = true;
      if (m.revision !== undefined) {
        // Every node that judged so tries; compare-and-set lets one win, and a node that wrote since stays.
        this.table?.rows.remove(id, m.revision).catch(() => {});
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

/**
 * Cluster mode: writes this node's record (its heartbeat) to the members table
 * now and every `intervalMs`, one write at a time (a tick while one is under
 * way is skipped; a failed one is tried again by the next tick). stop()
 * removes the record, so the other nodes drop this one at once; it waits at
 * most `removeTimeoutMs` for that (a stop with the store unreachable leaves
 * the record, which then goes stale and leaves after its TTL).
 */
export function startMemberRecord(
  rows: SharedTable<NodeHeartbeat>,
  info: () => NodeHeartbeat,
  options: { intervalMs?: number; removeTimeoutMs?: number; logger?: Logger } = {},
): { write(): void; stop(): Promise<void> } {
  let writing: Promise<void> | undefined;
  let stopped = false;
  const write = (): void => {
    if (writing || stopped) return;
    let done: Promise<unknown>;
    try {
      const record = info();
      const current = rows.get(record.nodeId);
      done = current
        ? rows.update(record.nodeId, record, current.revision)
        : rows.create(record.nodeId, record);
    } catch (err) {
      done = Promise.reject(err);
    }
    writing = done.then(
      () => {},
      (err: unknown) => {
        // A conflict: the copy was behind (a write that timed out but was stored, or another node removed
        // the stale record); the next tick writes from the newer copy.
        options.logger?.debug({ err }, 'member record not written');
      },
    );
    void writing.finally(() => {
      writing = undefined;
    });
  };
  write();
  const timer = setInterval(write, options.intervalMs ?? 1000);
  timer.unref();
  return {
    write,
    async stop() {
      if (stopped) return;
      stopped = true;
      clearInterval(timer);
      const removal = (async () => {
        await writing;
        await rows.remove(info().nodeId);
      })();
      let timeout: NodeJS.Timeout | undefined;
      await Promise.race([
        removal.catch((err: unknown) => options.logger?.warn({ err }, 'member record not removed')),
        new Promise((resolve) => {
          timeout = setTimeout(resolve, options.removeTimeoutMs ?? 2000);
        }),
      ]);
      clearTimeout(timeout);
    },
  };
}

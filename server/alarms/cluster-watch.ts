/**
 * The alarms every node raises from what it sees of the cluster, so that an
 * operator is told even when every admin node is down:
 *   node_gone         a node left the membership without saying goodbye or draining
 *                     (cleared when it heartbeats again)
 *   admin_gone        no node serves the admin role for adminGoneAfterMs (cleared when one does);
 *                     an admin node never raises it
 *   nats_server_gone  a NATS server left the cluster's own view (the INFO updates
 *                     the servers send when a route drops) or dropped this node's
 *                     connection (cleared when it is back)
 * Every node raising the same alarm is fine: the book writes it once.
 */
import type { Bus, NodeHeartbeat, Subscription } from '../bus/bus.ts';
import { Subjects } from '../bus/bus.ts';
import { type Membership, servesRole } from '../router/membership.ts';
import type { AlarmBook } from './alarm-book.ts';

/**
 * A node that leaves says goodbye (a heartbeat with ttlMs 0) as it closes; the
 * goodbye and the removal from Membership arrive together, so node_gone waits
 * this long for it.
 */
const GOODBYE_GRACE_MS = 500;

/** Heartbeats come every second with a TTL of 3.5 s: after that, the membership is current again. */
const BLIND_AFTER_RECONNECT_MS = 4000;

/** What the bus connection tells about NATS servers (nats-status.ts turns client events into these). */
export type NatsServerEvent = { server: string; state: 'gone' | 'back' };

export interface ClusterWatchOptions {
  book: AlarmBook;
  membership: Membership;
  /** Goodbyes (heartbeats with ttlMs 0) come on it. */
  bus: Bus;
  nodeId: string;
  /** This node's roles: an admin node does not raise admin_gone. */
  roles: readonly string[];
  /** Default 10 s: above the membership TTL, so one missed admin heartbeat is no alarm. */
  adminGoneAfterMs?: number;
  now?: () => number;
  /** Tick (default 500 ms). */
  tickMs?: number;
}

interface Seen {
  heartbeat: NodeHeartbeat;
  goneAt?: number;
  leftCleanly?: boolean;
  checked?: boolean;
}

export class ClusterWatch {
  private readonly seen = new Map<string, Seen>();
  private readonly now: () => number;
  private readonly timer: NodeJS.Timeout;
  private readonly stopChange: () => void;
  private readonly goodbyes: Subscription;
  private readonly startedAt: number;
  private lastAdminAt: number | undefined;
  private blindUntil = 0;

  constructor(private readonly options: ClusterWatchOptions) {
    this.now = options.now ?? Date.now;
    this.startedAt = this.now();
    this.goodbyes = options.bus.subscribe(Subjects.heartbeat, (msg) => {
      const hb = msg.data as Partial<NodeHeartbeat> | null;
      if (hb && typeof hb.nodeId === 'string' && typeof hb.ttlMs === 'number' && hb.ttlMs <= 0) {
        const s = this.seen.get(hb.nodeId);
        if (s) s.leftCleanly = true;
      }
    });
    this.stopChange = options.membership.onChange(() => this.refresh());
    this.timer = setInterval(() => this.refresh(), options.tickMs ?? 500);
    this.timer.unref();
    this.refresh();
  }

  /** Notes that a node left on purpose (a goodbye seen some other way). */
  noteGoodbye(nodeId: string): void {
    const s = this.seen.get(nodeId);
    if (s) s.leftCleanly = true;
  }

  /**
   * This node's bus connection dropped or came back. While it is down, and
   * for a membership TTL after, the membership is this node's stale view:
   * nobody is judged gone from it.
   */
  busConnection(up: boolean): void {
    if (!up) this.blindUntil = Number.POSITIVE_INFINITY;
    else this.blindUntil = this.now() + BLIND_AFTER_RECONNECT_MS;
  }

  refresh(): void {
    const { book, membership } = this.options;
    const now = this.now();
    if (now < this.blindUntil) {
      for (const s of this.seen.values()) delete s.goneAt;
      for (const hb of membership.nodes()) this.see(hb);
      return;
    }
    const live = new Set<string>();
    let adminLive = false;
    for (const hb of membership.nodes()) {
      live.add(hb.nodeId);
      if (servesRole(hb.roles, 'admin')) adminLive = true;
      this.see(hb);
      // Also withdraws a raise not written yet (this node's own view was stale).
      void book.clear('node_gone', hb.nodeId, `node ${hb.nodeId} is back`);
    }
    for (const [id, s] of this.seen) {
      if (live.has(id)) continue;
      s.goneAt ??= now;
      if (!s.checked && (s.leftCleanly || s.heartbeat.draining)) s.checked = true;
      if (!s.checked && now - s.goneAt >= GOODBYE_GRACE_MS) {
        s.checked = true;
        void book.raise({
          kind: 'node_gone',
          subject: id,
          severity: 'critical',
          message: `node ${id} (${s.heartbeat.roles.join(', ')}) stopped sending heartbeats without draining`,
        });
      }
      // Forgotten once judged: its alarm (if any) lives in the book.
      if (s.checked) this.seen.delete(id);
    }
    this.watchAdmins(adminLive, now);
  }

  /** A live node; a goodbye it said before Membership dropped it is kept (same run of the node). */
  private see(hb: NodeHeartbeat): void {
    const prev = this.seen.get(hb.nodeId);
    const leftCleanly = prev?.leftCleanly === true && prev.heartbeat.startedAt === hb.startedAt;
    this.seen.set(hb.nodeId, { heartbeat: hb, ...(leftCleanly ? { leftCleanly } : {}) });
  }

  private watchAdmins(adminLive: boolean, now: number): void {
    const { book, roles } = this.options;
    if (servesRole(roles, 'admin')) return;
    if (adminLive) {
      this.lastAdminAt = now;
      void book.clear('admin_gone', 'cluster', 'an admin node is up');
      return;
    }
    const since = this.lastAdminAt ?? this.startedAt;
    if (now - since < (this.options.adminGoneAfterMs ?? 10_000)) return;
    if (book.isActive('admin_gone', 'cluster')) return;
    void book.raise({
      kind: 'admin_gone',
      subject: 'cluster',
      severity: 'critical',
      message:
        this.lastAdminAt === undefined
          ? `no admin node seen since ${this.options.nodeId} started: new devices cannot be authenticated`
          : `no admin node for ${Math.round((now - since) / 1000)} s (seen by ${this.options.nodeId}): new devices cannot be authenticated`,
    });
  }

  /** A NATS server went or came back (from the bus connection's status events). */
  natsServer(event: NatsServerEvent): void {
    const { book } = this.options;
    if (event.state === 'gone') {
      void book.raise({
        kind: 'nats_server_gone',
        subject: event.server,
        severity: 'critical',
        message: `NATS server ${event.server} is gone (seen by ${this.options.nodeId})`,
      });
    } else {
      void book.clear('nats_server_gone', event.server, `NATS server ${event.server} is back`);
    }
  }

  close(): void {
    this.goodbyes.unsubscribe();
    this.stopChange();
    clearInterval(this.timer);
  }
}

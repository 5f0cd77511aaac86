/**
 * The node monitor: nodes from Membership (heartbeats); nodes that left stay
 * listed as 'gone' for an hour. The alarms are the node's alarm book
 * (server/alarms): node_gone and admin_gone come from its cluster watch on
 * every node, backend_failing from the stored records this admin node hears
 * (admin/index.ts); the monitor lists them and says when they change. It
 * keeps the last hour of sessions, events and errors (monitor-history.ts).
 */
import type { Alarm, AlarmBook, Membership, NodeHeartbeat, ServedCounts } from '../server/index.ts';
import { MonitorHistory } from './monitor-history.ts';

export type { Alarm } from '../server/index.ts';

const GONE_KEPT_MS = 60 * 60_000;

export interface NodeView {
  nodeId: string;
  roles: string[];
  release: string;
  startedAt: number;
  uptimeSeconds: number;
  rssBytes: number;
  cpuSeconds: number;
  cpuPercent: number;
  /** Device sessions held, those waiting for a resume included. */
  sessions: number;
  /** Of those, devices online now (a carrier attached). */
  connected: number;
  /** Transport nodes: devices with accounts there, and those accounts (absent: not a transport, or an older release). */
  served?: ServedCounts;
  status: 'up' | 'draining' | 'gone';
  lastSeenAt: number;
}

interface Seen {
  heartbeat: NodeHeartbeat;
  lastSeenAt: number;
  cpuPercent: number;
  prev?: { at: number; cpu: number };
  goneAt?: number;
}

export class NodeMonitor {
  private readonly seen = new Map<string, Seen>();
  private readonly stopChange: () => void;
  private readonly timer: NodeJS.Timeout;
  private readonly now: () => number;
  /** The last hour, sampled (monitor-history.ts); the admin role feeds it the stored records. */
  readonly history: MonitorHistory;

  constructor(
    private readonly membership: Membership,
    private readonly alarms: AlarmBook,
    options: { now?: () => number; historyIntervalMs?: number } = {},
  ) {
    this.now = options.now ?? Date.now;
    this.history = new MonitorHistory(() => this.nodes(), {
      now: this.now,
      ...(options.historyIntervalMs === undefined ? {} : { intervalMs: options.historyIntervalMs }),
    });
    this.stopChange = membership.onChange(() => this.refresh());
    this.timer = setInterval(() => this.refresh(), 1000);
    this.timer.unref();
    this.refresh();
  }

  onAlarmsChanged(listener: () => void): () => void {
    return this.alarms.onChange(listener);
  }

  /** Pulls the live set from Membership; notes who left. */
  refresh(): void {
    const now = this.now();
    const live = new Set<string>();
    for (const hb of this.membership.nodes()) {
      live.add(hb.nodeId);
      const s = this.seen.get(hb.nodeId);
      const cpu = hb.cpuSeconds;
      if (s && s.heartbeat.startedAt === hb.startedAt && s.prev && now - s.prev.at >= 900) {
        s.cpuPercent = Math.max(0, ((cpu - s.prev.cpu) / ((now - s.prev.at) / 1000)) * 100);
        s.prev = { at: now, cpu };
      }
      const next: Seen =
        s && !s.goneAt ? s : { heartbeat: hb, lastSeenAt: now, cpuPercent: 0, prev: { at: now, cpu } };
      next.heartbeat = hb;
      next.lastSeenAt = now;
      delete next.goneAt;
      this.seen.set(hb.nodeId, next);
    }
    for (const [id, s] of this.seen) {
      if (live.has(id)) continue;
      if (s.goneAt === undefined) s.goneAt = now;
      else if (now - s.goneAt > GONE_KEPT_MS) this.seen.delete(id);
    }
  }

  nodes(): NodeView[] {
    const now = this.now();
    return [...this.seen.values()]
      .map((s): NodeView => {
        const hb = s.heartbeat;
        return {
          nodeId: hb.nodeId,
          roles: hb.roles,
          release: hb.release,
          startedAt: hb.startedAt,
          uptimeSeconds: Math.max(0, Math.round(((s.goneAt ?? now) - hb.startedAt) / 1000)),
          rssBytes: hb.rssBytes,
          cpuSeconds: hb.cpuSeconds,
          cpuPercent: Math.round(s.cpuPercent * 10) / 10,
          sessions: s.goneAt ? 0 : hb.sessions,
          // A node of an older release reports only sessions.
          connected: s.goneAt ? 0 : (hb.connected ?? hb.sessions),
          ...servedView(hb.served, s.goneAt !== undefined),
          status: s.goneAt ? 'gone' : hb.draining ? 'draining' : 'up',
          lastSeenAt: s.lastSeenAt,
        };
      })
      .sort((a, b) => (a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0));
  }

  isLive(nodeId: string): boolean {
    const s = this.seen.get(nodeId);
    return s !== undefined && s.goneAt === undefined;
  }

  alarmList(activeOnly = false): Alarm[] {
    return this.alarms.list(activeOnly);
  }

  /** The alarm history, newest first (every raise and clear). */
  alarmHistory(options: { limit: number; beforeSeq?: number }) {
    return this.alarms.history.list(options);
  }

  close(): void {
    this.stopChange();
    clearInterval(this.timer);
    this.history.close();
  }
}

/**
 * The counts of another node's heartbeat, when they are counts (the bus is
 * shared: a bad heartbeat shows none rather than garbage); zeros once gone.
 */
function servedView(served: unknown, gone: boolean): { served?: ServedCounts } {
  if (served === null || typeof served !== 'object') return {};
  const s = served as Record<string, unknown>;
  const count = (v: unknown) => (Number.isSafeInteger(v) && (v as number) >= 0 ? (v as number) : undefined);
  const devices = count(s.devices);
  const mailAccounts = count(s.mailAccounts);
  const imAccounts = count(s.imAccounts);
  if (devices === undefined || mailAccounts === undefined || imAccounts === undefined) return {};
  return {
    served: gone ? { devices: 0, mailAccounts: 0, imAccounts: 0 } : { devices, mailAccounts, imAccounts },
  };
}

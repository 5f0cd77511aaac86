/**
 * The node monitor and the alarms. Nodes come from Membership (heartbeats);
 * nodes that left stay listed as 'gone' for an hour. Alarms:
 *   node_gone        a node stopped heartbeating without draining first (cleared when it is back)
 *   backend_failing  ≥ BACKEND_THRESHOLD backend_error records for one service and code
 *                    within BACKEND_WINDOW_MS (cleared after a quiet window)
 * Kept in memory: every admin node watches the same heartbeats and the same
 * stored-records broadcast, so each has the same picture.
 */
import {
  type Bus,
  type DeviceLogRecord,
  type Membership,
  type NodeHeartbeat,
  type ServedCounts,
  Subjects,
  type Subscription,
} from '../server/index.ts';

export const BACKEND_WINDOW_MS = 5 * 60_000;
export const BACKEND_THRESHOLD = 3;
const GONE_KEPT_MS = 60 * 60_000;
/**
 * A node that leaves says goodbye (a heartbeat with ttlMs 0) as it closes; the
 * goodbye and the removal from Membership arrive together, so a node_gone alarm
 * waits this long for it before it is raised.
 */
const GOODBYE_GRACE_MS = 500;

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

export interface Alarm {
  id: string;
  kind: 'node_gone' | 'backend_failing';
  severity: 'warning' | 'critical';
  subject: string;
  message: string;
  since: number;
  lastAt: number;
  count: number;
  active: boolean;
}

interface Seen {
  heartbeat: NodeHeartbeat;
  lastSeenAt: number;
  cpuPercent: number;
  prev?: { at: number; cpu: number };
  goneAt?: number;
  /** Said goodbye (or was draining): left on purpose. */
  leftCleanly?: boolean;
  alarmChecked?: boolean;
}

export class NodeMonitor {
  private readonly seen = new Map<string, Seen>();
  private readonly alarms = new Map<string, Alarm>();
  private readonly backendErrors = new Map<string, number[]>();
  private readonly listeners = new Set<() => void>();
  private readonly stopChange: () => void;
  private readonly timer: NodeJS.Timeout;
  private readonly goodbyes: Subscription | undefined;
  private readonly now: () => number;

  constructor(
    private readonly membership: Membership,
    options: { now?: () => number; bus?: Bus } = {},
  ) {
    this.now = options.now ?? Date.now;
    this.goodbyes = options.bus?.subscribe(Subjects.heartbeat, (msg) => {
      const hb = msg.data as Partial<NodeHeartbeat> | null;
      if (hb && typeof hb.nodeId === 'string' && typeof hb.ttlMs === 'number' && hb.ttlMs <= 0)
        this.noteGoodbye(hb.nodeId);
    });
    this.stopChange = membership.onChange(() => this.refresh());
    this.timer = setInterval(() => this.refresh(), 1000);
    this.timer.unref();
    this.refresh();
  }

  onAlarmsChanged(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private changed(): void {
    for (const l of this.listeners) l();
  }

  /** A node said goodbye: it leaves on purpose, no alarm. */
  noteGoodbye(nodeId: string): void {
    const s = this.seen.get(nodeId);
    if (s) s.leftCleanly = true;
  }

  /** Pulls the live set from Membership; notes who left and how. */
  refresh(): void {
    const now = this.now();
    const live = new Set<string>();
    let alarmsChanged = false;
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
      delete next.leftCleanly;
      delete next.alarmChecked;
      this.seen.set(hb.nodeId, next);
      const alarm = this.alarms.get(`node_gone:${hb.nodeId}`);
      if (alarm?.active) {
        alarm.active = false;
        alarm.lastAt = now;
        alarmsChanged = true;
      }
    }
    for (const [id, s] of this.seen) {
      if (live.has(id)) continue;
      if (s.goneAt === undefined) s.goneAt = now;
      if (!s.alarmChecked && (s.leftCleanly || s.heartbeat.draining)) s.alarmChecked = true;
      if (!s.alarmChecked && now - s.goneAt >= GOODBYE_GRACE_MS) {
        s.alarmChecked = true;
        const key = `node_gone:${id}`;
        const prev = this.alarms.get(key);
        this.alarms.set(key, {
          id: key,
          kind: 'node_gone',
          severity: 'critical',
          subject: id,
          message: `node ${id} (${s.heartbeat.roles.join(', ')}) stopped sending heartbeats without draining`,
          since: now,
          lastAt: now,
          count: (prev?.count ?? 0) + 1,
          active: true,
        });
        alarmsChanged = true;
      } else if (now - s.goneAt > GONE_KEPT_MS) this.seen.delete(id);
    }
    // Backend alarms clear after a quiet window.
    for (const [key, times] of this.backendErrors) {
      const recent = times.filter((t) => t > now - BACKEND_WINDOW_MS);
      if (recent.length === 0) this.backendErrors.delete(key);
      else this.backendErrors.set(key, recent);
      const alarm = this.alarms.get(`backend_failing:${key}`);
      if (alarm?.active && recent.length === 0) {
        alarm.active = false;
        alarmsChanged = true;
      }
    }
    if (alarmsChanged) this.changed();
  }

  /** Feeds stored log records in (backend_error ones count). */
  observeLogs(logs: DeviceLogRecord[]): void {
    const now = this.now();
    let alarmsChanged = false;
    for (const r of logs) {
      if (r.kind !== 'backend_error') continue;
      const subject = `${r.service}:${r.code ?? 'error'}`;
      const times = (this.backendErrors.get(subject) ?? []).filter((t) => t > now - BACKEND_WINDOW_MS);
      times.push(now);
      this.backendErrors.set(subject, times);
      const key = `backend_failing:${subject}`;
      const alarm = this.alarms.get(key);
      if (alarm?.active) {
        alarm.count++;
        alarm.lastAt = now;
        alarm.message = `${r.service} backend failing: ${r.code ?? 'error'} (${times.length} errors in 5 min${r.message ? `; last: ${r.message}` : ''})`;
      } else if (times.length >= BACKEND_THRESHOLD) {
        this.alarms.set(key, {
          id: key,
          kind: 'backend_failing',
          severity: 'warning',
          subject,
          message: `${r.service} backend failing: ${r.code ?? 'error'} (${times.length} errors in 5 min${r.message ? `; last: ${r.message}` : ''})`,
          since: now,
          lastAt: now,
          count: times.length,
          active: true,
        });
        alarmsChanged = true;
      }
    }
    if (alarmsChanged) this.changed();
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
    return [...this.alarms.values()]
      .filter((a) => !activeOnly || a.active)
      .sort((a, b) => Number(b.active) - Number(a.active) || b.lastAt - a.lastAt);
  }

  close(): void {
    this.goodbyes?.unsubscribe();
    this.stopChange();
    clearInterval(this.timer);
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

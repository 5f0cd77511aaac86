/**
 * The alarm model. An alarm is identified by kind and subject (`node_gone:e1`);
 * its history is a sequence of versioned records, one per raise and one per
 * clear, so that one raised alarm per subject exists until it is cleared
 * (de-duplication), whichever node saw the problem first. An event such as
 * a takeover is raised and cleared in one step: it reaches every channel and
 * the history, and never stays active.
 */

export const ALARM_KINDS = [
  /** A node stopped heartbeating without draining; cleared when it is back. */
  'node_gone',
  /** No admin node in the membership: raised by any node, so it is told even with every admin down. */
  'admin_gone',
  /** A NATS server left the cluster (the cluster's own view) or dropped this node's connection. */
  'nats_server_gone',
  /** A node took over another's devices (an event: raised and cleared at once). */
  'takeover_done',
  /** Failed backend requests of one device or one preset over a window reached the threshold. */
  'backend_failing',
] as const;
export type AlarmKind = (typeof ALARM_KINDS)[number];

export const ALARM_SEVERITIES = ['info', 'warning', 'critical'] as const;
export type AlarmSeverity = (typeof ALARM_SEVERITIES)[number];

/** What is persisted, one per raise or clear. */
export interface AlarmRecord {
  /** Record layout version; readers accept every version up to their own. */
  v: 1;
  /** `${kind}:${subject}`. */
  id: string;
  kind: AlarmKind;
  subject: string;
  severity: AlarmSeverity;
  state: 'raised' | 'cleared';
  message: string;
  /** When the alarm was raised (a clear repeats it). */
  since: number;
  /** When this record was written. */
  at: number;
  /** The node that wrote it. */
  node: string;
}

export const ALARM_RECORD_VERSION = 1;

/** An alarm as the API and the UI show it: the state its newest record gives. */
export interface Alarm {
  id: string;
  kind: AlarmKind;
  severity: AlarmSeverity;
  subject: string;
  message: string;
  since: number;
  lastAt: number;
  /** How often it was raised (this node's count since it started). */
  count: number;
  active: boolean;
}

export function alarmId(kind: AlarmKind, subject: string): string {
  return `${kind}:${subject}`;
}

const MAX_TEXT = 2000;

function text(x: unknown, max = MAX_TEXT): string | undefined {
  return typeof x === 'string' && x.length <= max ? x : undefined;
}

function time(x: unknown): number | undefined {
  return typeof x === 'number' && Number.isFinite(x) && x >= 0 ? x : undefined;
}

/**
 * Reads a stored or received record: bytes from another node or an older
 * release are untrusted. Unknown fields of a newer minor layout are dropped;
 * anything malformed is undefined (the caller skips it).
 */
export function readAlarmRecord(x: unknown): AlarmRecord | undefined {
  if (x === null || typeof x !== 'object') return undefined;
  const r = x as Record<string, unknown>;
  if (typeof r.v !== 'number' || r.v < 1) return undefined;
  const kind = (ALARM_KINDS as readonly unknown[]).includes(r.kind) ? (r.kind as AlarmKind) : undefined;
  const severity = (ALARM_SEVERITIES as readonly unknown[]).includes(r.severity)
    ? (r.severity as AlarmSeverity)
    : undefined;
  const state = r.state === 'raised' || r.state === 'cleared' ? r.state : undefined;
  const subject = text(r.subject, 500);
  const message = text(r.message);
  const node = text(r.node, 200);
  const since = time(r.since);
  const at = time(r.at);
  if (!kind || !severity || !state || subject === undefined || message === undefined) return undefined;
  if (node === undefined || since === undefined || at === undefined) return undefined;
  return { v: 1, id: alarmId(kind, subject), kind, subject, severity, state, message, since, at, node };
}

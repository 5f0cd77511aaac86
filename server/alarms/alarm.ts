/**
 * The alarm model. An alarm is identified by kind and subject (`node_gone:e1`);
 * its history is a sequence of versioned records, one per raise and one per
 * clear, so that one raised alarm per subject exists until it is cleared
 * (de-duplication), whichever node saw the problem first. An event such as
 * a takeover is raised and cleared in one step: it reaches every channel and
 * the history, and never stays active.
 */
import { z } from 'zod';

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

const alarmRecordShape = z.looseObject({
  v: z.number().min(1),
  kind: z.enum(ALARM_KINDS),
  severity: z.enum(ALARM_SEVERITIES),
  state: z.enum(['raised', 'cleared']),
  subject: z.string().max(500),
  message: z.string().max(MAX_TEXT),
  node: z.string().max(200),
  since: z.number().min(0),
  at: z.number().min(0),
});

/**
 * Reads a stored or received record: bytes from another node or an older
 * release are untrusted. Unknown fields of a newer minor layout are dropped;
 * anything malformed is undefined (the caller skips it).
 */
export function readAlarmRecord(x: unknown): AlarmRecord | undefined {
  const parsed = alarmRecordShape.safeParse(x);
  if (!parsed.success) return undefined;
  const { kind, subject, severity, state, message, since, at, node } = parsed.data;
  return { v: 1, id: alarmId(kind, subject), kind, subject, severity, state, message, since, at, node };
}

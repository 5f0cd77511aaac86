/**
 * Per-device log records and hourly usage counters. Every role writes them
 * through one Recorder (injected, never imported globally); the admin role
 * stores them with retention and serves them to the UI and the REST API.
 * Nothing secret goes into a record: no passwords, secrets, tokens or bodies.
 */

export type ServiceName = 'session' | 'mail' | 'im';

/** Stable kinds; the admin UI and API filter by them. Add new ones, never rename. */
export const DEVICE_LOG_KINDS = [
  /** A new session (Hello accepted): the login of the usage counters. */
  'connect',
  /** A carrier closed; the session stays for a Resume (not a logout). */
  'disconnect',
  'auth_failure',
  'resume',
  'carrier_switch',
  'takeover',
  'backend_login',
  'backend_logout',
  'backend_error',
  'message_in',
  'message_out',
  'sync',
  'error',
  /** The session ended (code says why): the logout of the usage counters, one per connect. */
  'logout',
  /** A wake-up channel the push service called gone (404/410) was removed (server/transport/push/). */
  'push_removed',
] as const;

export type DeviceLogKind = (typeof DEVICE_LOG_KINDS)[number];

/**
 * Kinds of records that anyone on the internet can cause (a refused Hello
 * names whatever IMEI it likes). The records store keeps them apart: a small
 * quota per device, so they never push out the device's own records, and, for
 * IMEIs that are not provisioned, the bounded security log instead of a
 * device log (admin/records-store.ts).
 */
export const OUTSIDER_LOG_KINDS: ReadonlySet<string> = new Set<DeviceLogKind>(['auth_failure']);

export interface DeviceLogRecord {
  /** Epoch ms. */
  at: number;
  imei: string;
  kind: DeviceLogKind;
  /** Node that wrote it. */
  node: string;
  service: ServiceName;
  /** Short human text, e.g. 'auth.bad_secret' or 'carrier ws → poll'. */
  message?: string;
  /** Error code when the record is about an error. */
  code?: string;
  bytesIn?: number;
  bytesOut?: number;
  detail?: Record<string, string | number | boolean>;
}

/** Added to the hour bucket of `at` for (imei, operator, service). */
export interface UsageDelta {
  at: number;
  imei: string;
  operator?: string;
  service: ServiceName;
  logins?: number;
  logouts?: number;
  messagesIn?: number;
  messagesOut?: number;
  bytesIn?: number;
  bytesOut?: number;
}

/**
 * Upper bounds (seconds) of the wake-up latency buckets, the last one open:
 * the histogram mmgw_wakeup_latency_seconds's, and the records' (so that the
 * usage report's quantiles are read from the same buckets as Prometheus').
 */
export const WAKEUP_LATENCY_BOUNDS_S = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60] as const;

/** One wake-up's outcome on one channel kind (webpush, fcm, apns, sms). */
export interface WakeupOutcome {
  imei: string;
  operator?: string;
  channel: string;
  sent?: number;
  failed?: number;
  pruned?: number;
  /** Of a sent one: from the first item it told of to the push service taking it. */
  latencyMs?: number;
}

/**
 * Wake-up outcomes summed per (hour of `at`, imei, channel) as the recorder
 * sends them; `latencyBuckets[i]` counts the sent ones at or under
 * WAKEUP_LATENCY_BOUNDS_S[i] seconds (not cumulative) and the last entry
 * those beyond, so its length is the bounds' plus one.
 */
export interface WakeupDelta {
  at: number;
  imei: string;
  operator?: string;
  channel: string;
  sent: number;
  failed: number;
  pruned: number;
  latencySumMs: number;
  latencyBuckets: number[];
}

export interface Recorder {
  /** Never throws, never blocks: records are batched and sent on the bus. */
  log(record: Omit<DeviceLogRecord, 'at' | 'node'> & { at?: number }): void;
  usage(delta: Omit<UsageDelta, 'at'> & { at?: number }): void;
  /** A wake-up's outcome (server/transport/push); absent from recorders that keep none (tests). */
  wakeup?(outcome: WakeupOutcome & { at?: number }): void;
  /** Sends what is batched now. */
  flush(): Promise<void>;
  close(): Promise<void>;
}

/** A Recorder that drops everything: for unit tests of one module. */
export const nullRecorder: Recorder = {
  log() {},
  usage() {},
  async flush() {},
  async close() {},
};

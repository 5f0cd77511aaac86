/**
 * The vocabulary between the Handset SDK's session state machine
 * (handset-session.ts), its shell (handset.ts) and the tests that drive the
 * machine: the session settings, the events an application hears, and the
 * inputs and effects of a step.
 */

import type { BackoffOptions } from './backoff.ts';
import type { CarrierCloseInfo, CarrierKind } from './carriers/carrier.ts';
import type { GatewayError } from './errors.ts';
import type { HandsetPlugin } from './handset-plugin.ts';
import type { Capabilities, Frame, Hello, Resume, Value } from './messages.ts';

export type TransportMode = 'ws' | 'poll' | 'auto';

/** The settings of a session (HandsetOptions without what only the shell needs). */
export interface SessionSettings {
  imei: string;
  /**
   * The gateway's URLs (edges reached without a load balancer), tried in
   * turn: an attempt starts at the last one that welcomed it and moves on
   * when one refuses, times out or goes silent. The machine only names them
   * in its `open` effects and events; default one unnamed URL ('').
   */
  urls?: readonly string[];
  secret?: string;
  /** A JWT from an earlier Welcome; used when there is no secret. */
  token?: string;
  /** Default 'auto': WebSocket first, long-poll when WebSocket fails to open. */
  transport?: TransportMode;
  /** 'auto' falls back to long-poll after 2 WebSocket failures or no Welcome within this. Default 5000. */
  fallbackAfterMs?: number;
  caps?: Capabilities;
  /** Client name and version, e.g. "mmgw-cli/0.1". */
  client?: string;
  backoff?: BackoffOptions;
  /** Default timeout of request() and ping(), and of a long-poll POST. Default 30000. */
  requestTimeoutMs?: number;
  /**
   * A Resume answered `session.busy` (the edge holding the session does not
   * hand it over: frozen, or cut off) for this long in a row gives the session
   * up: the next carrier says Hello and the application gets `connected` with
   * `resumed: false`. Longer than an edge's claim patience (30 s by default),
   * so that a holder that is only slow still hands the session over. Default 60000.
   */
  resumeBusyLimitMs?: number;
  /** An Ack goes out at the latest this long after a sequenced frame arrived. Default 1000. */
  ackIntervalMs?: number;
  /**
   * Ask for frame compression on WebSocket carriers (SPEC.md §4.4: Hello
   * caps `compression` gets `deflate`): names, ids and JIDs that earlier
   * frames on the same connection carried cost a few bytes each. It costs
   * a few KiB of memory per connection on both sides. Default true.
   */
  compression?: boolean;
}

export interface HandsetSessionOptions extends SessionSettings {
  /** The body encodings, in order (handset-plugin.ts). */
  plugins: readonly HandsetPlugin[];
  now(): number;
  /** In [0, 1): the backoff jitter and the request id prefix. */
  random(): number;
}

export interface HandsetPushEvent {
  name: string;
  body?: Value;
  seq: number;
}

export interface HandsetConnectedEvent {
  sessionId: string;
  transport: CarrierKind;
  resumed: boolean;
  /** The gateway URL the session is on. */
  url: string;
}

export interface HandsetDisconnectedEvent {
  code?: string;
  reason: string;
  willReconnect: boolean;
}

export interface HandsetReconnectingEvent {
  /** 1 for the first retry after a loss; reset by every Welcome. */
  attempt: number;
  delayMs: number;
  transport: CarrierKind;
  /** The gateway URL the retry goes to. */
  url: string;
  /** Why the last attempt or carrier ended, when one did (e.g. "WebSocket failed to open (1006; connect ECONNREFUSED …)"). */
  reason?: string;
}

export interface HandsetEvents {
  event: HandsetPushEvent;
  connected: HandsetConnectedEvent;
  disconnected: HandsetDisconnectedEvent;
  reconnecting: HandsetReconnectingEvent;
  error: GatewayError;
}

/**
 * The session's timers: one of each name at a time, and the timeout of a
 * pending call under the call's number.
 */
export type TimerKey = 'reconnect' | 'attempt' | 'heartbeat' | 'ack' | 'switch' | 'gap' | number;

/**
 * What goes into the machine. `call` numbers the application's calls (chosen
 * by the caller, unique); carriers are numbered by the machine's `open` effects.
 */
export type SessionInput =
  | { type: 'connect'; call: number }
  | { type: 'request'; call: number; method: string; body?: Value; id?: string; timeoutMs?: number }
  | { type: 'ping'; call: number }
  | { type: 'switch'; call: number; kind: CarrierKind }
  | { type: 'close'; call: number }
  | { type: 'frame'; carrier: number; frame: Frame }
  | { type: 'carrier-closed'; carrier: number; info: CarrierCloseInfo }
  /** The carrier acked implicitly (long-poll `GET ?ack=`). */
  | { type: 'carrier-acked'; carrier: number; seq: number }
  | { type: 'timer'; timer: TimerKey };

export type EmitEffect = {
  [K in keyof HandsetEvents]: { type: 'emit'; name: K; payload: HandsetEvents[K] };
}[keyof HandsetEvents];

/** What the shell does, in order. */
export type SessionEffect =
  /** Open a new carrier with this number to `url` (one of the settings' urls) and send `first` on it. */
  | { type: 'open'; carrier: number; kind: CarrierKind; url: string; first: Hello | Resume }
  | { type: 'send'; carrier: number; frame: Frame }
  /** Close the carrier; it reports nothing more. */
  | { type: 'close'; carrier: number }
  /** Fire `timer` at `at` (the injected clock), replacing one of the same key. */
  | { type: 'schedule'; timer: TimerKey; at: number }
  | { type: 'cancel'; timer: TimerKey }
  | EmitEffect
  /** Settle call `call`: connect (Welcome), request (answer body), ping (RTT ms), switch, close. */
  | { type: 'resolve'; call: number; value: unknown }
  | { type: 'reject'; call: number; error: GatewayError };

/** A Web Push subscription, as a browser's PushSubscription.toJSON() gives it (other fields are ignored). */
export interface WebPushSubscription {
  endpoint: string;
  keys: { p256dh: string; auth: string };
}

/**
 * A native wake-up channel: an FCM registration token, an APNs device token (hex) and the app's bundle
 * id, or the phone's number (E.164) for SMS, the last resort.
 */
export type NativePushChannel =
  | { kind: 'fcm'; token: string }
  | { kind: 'apns'; token: string; topic: string }
  | { kind: 'sms'; msisdn: string };

/** One wake-up channel of the device (push.list, SPEC.md §5 "Wake-ups"). */
export interface PushRegistrationInfo {
  id: string;
  kind: string;
  /** Web Push. */
  endpoint?: string;
  /** FCM and APNs. */
  token?: string;
  /** APNs. */
  topic?: string;
  /** SMS. */
  msisdn?: string;
  /** When it was last registered (ms since the epoch). */
  at: number;
}

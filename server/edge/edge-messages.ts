/**
 * What edges send each other on a device subject (`Subjects.device(imei)`):
 * the bus contract's DeviceMessage, plus a hop count on passed-on messages,
 * and the edge-internal 'answer' and 'poll'.
 */
import type { DeviceMessage } from '../bus/bus.ts';

/**
 * Edges subscribe to device subjects in one queue group: while a claim moves a
 * session, the claimer and the holder are both subscribed for a moment, and a
 * queue group hands each event to one of them only (never twice).
 */
export const DEVICE_QUEUE = 'mmgw.edge';

/** The answer to a device's request, passed on to the edge the session moved to meanwhile. */
export interface AnswerMessage {
  type: 'answer';
  sessionId: string;
  id: string;
  body?: unknown;
  error?: { code: string; message: string; retryable?: boolean; retryAfterMs?: number };
  hops?: number;
}

/**
 * A long-poll request that landed on an edge without its session, passed to
 * the edge holding it (poll-forward.ts); answered with the HTTP answer.
 */
export interface PollMessage {
  type: 'poll';
  sessionId: string;
  /** X-MMGW-Token: checked by the holder as for a request that landed there. */
  token: string;
  method: 'GET' | 'POST';
  query: string;
  body?: Uint8Array;
  hops?: number;
}

export type ClaimMessage = Extract<DeviceMessage, { type: 'claim' }> & { hops?: number };

export type EdgeDeviceMessage = (DeviceMessage & { hops?: number }) | AnswerMessage | PollMessage;

/**
 * What edges send each other on a device subject (`Subjects.device(imei)`):
 * the bus contract's DeviceMessage, plus a hop count on passed-on messages,
 * `poll` on a claim made by a long-poll request (the holder then ends its
 * poll carrier quietly), and the edge-internal 'answer'.
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

export type ClaimMessage = Extract<DeviceMessage, { type: 'claim' }> & { hops?: number; poll?: boolean };

export type EdgeDeviceMessage = (DeviceMessage & { hops?: number; poll?: boolean }) | AnswerMessage;

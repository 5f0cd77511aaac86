import type { Logger } from 'pino';
import type { z } from 'zod';
import type { Capabilities, Value } from '../../device-protocol/messages.ts';
import type { Bus } from '../bus/bus.ts';
import type { DeviceProfile } from '../store/device-profile.ts';

/** What the edge sends to a transport node for each device Request (Subjects.transportRequest). */
export interface TransportRequest {
  deviceId: string;
  sessionId: string;
  /** The device's request id (client id): stable across resends. */
  id: string;
  method: string;
  body?: Value;
  /** What the device said it can show (Hello caps), for shrinking images and bodies to fit. */
  caps?: Capabilities;
  /** How long the edge waits for the answer (ms): past it the device was told request.timeout. */
  budgetMs?: number;
}

/** Given to every method handler; handlers never reach for globals. */
export interface MethodContext {
  deviceId: string;
  sessionId: string;
  requestId: string;
  bus: Bus;
  logger: Logger;
  /** Node-local data directory of this transport node. */
  dataDir: string;
  /** The device's Hello caps as the edge passed them (TransportRequest.caps); absent when it declared none. */
  caps?: Capabilities;
  /**
   * The device's service profile (services, presets, policies), for mail.* and
   * im.* requests when the node knows the admin (TransportOptions.profiles).
   */
  profile?: DeviceProfile;
  now(): number;
  /**
   * When (now() time) the edge stops waiting for the answer and the device
   * is told request.timeout, after which it may resend elsewhere; absent when
   * the edge did not say. A method about to do something it cannot take back
   * (an SMTP send) checks it: a node frozen mid-request (SIGSTOP, a long GC
   * pause) must not finish what a resend on another node already did.
   */
  deadline?: number;
  /**
   * Push an event to the device's session (through whichever edge holds it).
   * Resolves with the seq once the edge has it in its replay buffer;
   * rejects with GatewayError('bus.no_responders') when the device has no session.
   */
  push(name: string, body?: Value): Promise<number>;
}

/**
 * One file per method under server/transport/methods/ (or a service folder),
 * each exporting a MethodDefinition. `input` is the zod schema of the
 * untrusted body, with every limit in it; the dispatcher parses the body with
 * it (kit/method-input.ts), so `handle` only ever sees typed input, and a body
 * it refuses is GatewayError('request.bad_input', …, { field }).
 */
export interface MethodDefinition<I = unknown> {
  method: string;
  input: z.ZodType<I>;
  handle(ctx: MethodContext, input: I): Promise<Value | undefined>;
}

/**
 * Pushes an event to a device through whichever edge holds its session
 * (Subjects.device(deviceId)): the one way every transport service reaches a
 * device outside an answer (MethodContext.push, IM messages and presence, mail
 * account states, provisioned accounts, INBOX watchers through the ctx.push
 * they were given).
 *
 * The edge answers once the event is in the session's replay buffer, with the
 * sequence number it got there; from then on the device gets it even across a
 * reconnect. A device without a session has no subscriber on its subject, so
 * the bus rejects with bus.no_responders instead of waiting out the timeout.
 * A session without a carrier (kept for a resume) takes the event, and the
 * edge says so (`detached`): the device sees it only once it comes back.
 * Either way the undelivered listeners hear of it (the wake-ups' feed).
 */
import { GatewayError, toGatewayError } from '../../../device-protocol/errors.ts';
import type { Value } from '../../../device-protocol/messages.ts';
import { type Bus, type DeviceEventReply, type DeviceMessage, Subjects } from '../../bus/bus.ts';
import { Counter, type Registry } from 'prom-client';

/**
 * How long a push waits for the edge to take the event into its replay buffer.
 * A live edge answers at once; this bounds a push to an edge that is stuck or
 * gone while its subscription still stands.
 */
export const DEVICE_PUSH_TIMEOUT_MS = 5000;

/** The longest pause between two tries of a push the bus did not deliver. */
export const PUSH_RETRY_MAX_MS = 1000;

/**
 * The pause before try `failures + 1` of a push that failed on the bus
 * (down, or the edge not answering): 250 ms doubling to PUSH_RETRY_MAX_MS,
 * ±50 % jitter. Short on purpose: each such failure has waited up to
 * DEVICE_PUSH_TIMEOUT_MS already (a request waits for a bus that is down),
 * so a long pause only delays the push, and every push queued behind it,
 * after the bus is back.
 */
export function pushRetryDelayMs(failures: number, random: () => number = Math.random): number {
  const base = Math.min(PUSH_RETRY_MAX_MS, 250 * 2 ** Math.max(0, Math.min(failures - 1, 16)));
  return Math.round(base * (0.5 + random()));
}

/**
 * Push outcomes, for mmgw_device_pushes_total{result}: delivered (in the replay
 * buffer), no_session (the device has none: expected, it catches up later),
 * timeout (an edge holds the subject but did not answer) and failed (anything
 * else). Counted per bus, so every pusher of a process (mail, chat, the
 * dispatcher) adds to the same figures without being handed a registry.
 */
export type PushResult = 'delivered' | 'no_session' | 'timeout' | 'failed';
const outcomes = new WeakMap<object, Map<PushResult, number>>();

function outcomesOf(bus: object): Map<PushResult, number> {
  let m = outcomes.get(bus);
  if (m === undefined) {
    m = new Map();
    outcomes.set(bus, m);
  }
  return m;
}

/** Registers mmgw_device_pushes_total on `registry`, reading the outcomes of the pushers over `bus`. */
export function registerPushMetrics(registry: Registry, bus: object): void {
  if (registry.getSingleMetric('mmgw_device_pushes_total')) return;
  const counts = outcomesOf(bus);
  new Counter({
    name: 'mmgw_device_pushes_total',
    help: 'Events pushed to devices through their edge, by result (delivered, no_session, timeout, failed).',
    labelNames: ['result'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [result, n] of counts) this.inc({ result }, n);
    },
  });
}

/**
 * Why a pushed event did not reach the device: it has no session
 * (bus.no_responders; the event is lost, the device catches up later), or
 * its session has no carrier (the edge holds the event for a resume).
 */
export type UndeliveredWhy = 'no_session' | 'detached';

/** Told of every event a pusher over the bus could not give the device, and why. */
/** `body`: the event's, for what a wake-up may show of it (server/transport/push/preview.ts). */
export type UndeliveredListener = (deviceId: string, name: string, why: UndeliveredWhy, body?: Value) => void;
const undelivered = new WeakMap<object, Set<UndeliveredListener>>();

/**
 * Listens for events that found no session (bus.no_responders) or only a
 * detached one on any pusher over `bus`: the wake-ups' feed
 * (server/transport/push/). Returns the unlisten.
 */
export function onUndelivered(bus: object, listener: UndeliveredListener): () => void {
  let set = undelivered.get(bus);
  if (set === undefined) {
    set = new Set();
    undelivered.set(bus, set);
  }
  set.add(listener);
  return () => set.delete(listener);
}

/** One device's push: resolves with the event's seq in the device session. */
export type DevicePush = (name: string, body?: Value) => Promise<number>;

export class DevicePusher {
  readonly #bus: Pick<Bus, 'request'>;
  readonly #outcomes: Map<PushResult, number>;
  #closed = false;

  constructor(bus: Pick<Bus, 'request'>) {
    this.#bus = bus;
    this.#outcomes = outcomesOf(bus);
  }

  /**
   * Resolves with the seq the edge gave the event; rejects with
   * bus.no_responders when the device has no session, bus.timeout when its
   * edge does not answer, bus.closed once this pusher is closed.
   */
  async push(deviceId: string, name: string, body?: Value): Promise<number> {
    if (this.#closed) throw new GatewayError('bus.closed', 'The transport is closed.');
    try {
      const { seq, detached } = await this.#push(deviceId, name, body);
      this.#count('delivered');
      if (detached === true) this.#tellUndelivered(deviceId, name, 'detached', body);
      return seq;
    } catch (err) {
      const code = toGatewayError(err).code;
      if (code === 'bus.no_responders') this.#tellUndelivered(deviceId, name, 'no_session', body);
      this.#count(
        code === 'bus.no_responders' ? 'no_session' : code === 'bus.timeout' ? 'timeout' : 'failed',
      );
      throw err;
    }
  }

  #tellUndelivered(deviceId: string, name: string, why: UndeliveredWhy, body: Value | undefined): void {
    for (const listener of undelivered.get(this.#bus) ?? []) {
      try {
        listener(deviceId, name, why, body);
      } catch {
        // A listener's fault is its own; the push's outcome stays what it was.
      }
    }
  }

  #count(result: PushResult): void {
    this.#outcomes.set(result, (this.#outcomes.get(result) ?? 0) + 1);
  }

  async #push(deviceId: string, name: string, body?: Value): Promise<DeviceEventReply> {
    const message: DeviceMessage =
      body === undefined ? { type: 'event', name } : { type: 'event', name, body };
    const reply = await this.#bus.request<DeviceEventReply>(Subjects.device(deviceId), message, {
      timeoutMs: DEVICE_PUSH_TIMEOUT_MS,
    });
    if (reply === null || typeof reply !== 'object' || typeof reply.seq !== 'number') {
      throw new GatewayError('bus.bad_message', 'The edge answered a pushed event without a seq.');
    }
    // Only `true` counts: an edge of another release may send anything else, or nothing.
    return reply.detached === true ? { seq: reply.seq, detached: true } : { seq: reply.seq };
  }

  /** The push of one device, for code that holds a device's push function (sessions, watchers). */
  to(deviceId: string): DevicePush {
    return (name, body) => this.push(deviceId, name, body);
  }

  /** Later pushes reject with bus.closed (a stopping transport starts nothing new). */
  close(): void {
    this.#closed = true;
  }
}

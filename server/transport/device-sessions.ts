/**
 * Device session up/down for the transport role. The edge publishes
 * Subjects.sessionUp when a device session is created or resumed and
 * Subjects.sessionDown when it ends; every transport node hears both, and the
 * one the device is pinned to (rendezvous pick) tells its services, so that
 * backend sessions come back without a new login and linger (CSI inactive)
 * when the handset is gone.
 *
 * Services plug in as DeviceSessionHooks (IM today; mail can add its own).
 */
import type { Logger } from 'pino';
import { type Bus, type DeviceSessionEvent, Subjects } from '../bus/bus.ts';
import { type DevicePush, DevicePusher } from './kit/device-pusher.ts';
import { boundedString, objectOf } from './kit/method-input.ts';

export interface DeviceSessionHooks {
  /** The device has a live session (new or resumed); `push` reaches it through its edge. */
  up(deviceId: string, push: DevicePush): void | Promise<void>;
  /** The device's session ended; it may come back later with a new one. */
  down(deviceId: string): void | Promise<void>;
}

export interface WatchDeviceSessionsOptions {
  bus: Bus;
  /** True when this node is the device's transport node (the router's pick). */
  holds(deviceId: string): boolean;
  hooks: DeviceSessionHooks[];
  /** What the hooks' pushes go through. Default: a DevicePusher on `bus`. */
  pusher?: DevicePusher;
  logger?: Pick<Logger, 'debug' | 'warn'>;
}

const sessionEvent = objectOf({ deviceId: boundedString(256), sessionId: boundedString(256) });

/** A malformed event (a shared bus) is dropped. */
function parseEvent(data: unknown): DeviceSessionEvent | undefined {
  const parsed = sessionEvent.safeParse(data);
  return parsed.success ? parsed.data : undefined;
}

export interface DeviceSessionWatch {
  /**
   * Resolves once no up hook has been under way for `quietMs` (the devices the
   * edges told of are back), or after `maxMs`.
   */
  quiet(quietMs: number, maxMs: number): Promise<void>;
  /** Whether an edge told of a session of the device (up, not down since). */
  has(deviceId: string): boolean;
  close(): void;
}

export function watchDeviceSessions(opts: WatchDeviceSessionsOptions): DeviceSessionWatch {
  const { bus, hooks, logger } = opts;
  const pusher = opts.pusher ?? new DevicePusher(bus);
  // The newest session each device was seen up with: a down of an older session
  // (published by another edge, so possibly arriving after the newer up) is ignored.
  const current = new Map<string, string>();
  let upsUnderWay = 0;
  let lastUpAt = 0;
  const call = (what: string, deviceId: string, fn: () => void | Promise<void>) => {
    const up = what === 'up';
    if (up) upsUnderWay++;
    const done = () => {
      if (!up) return;
      upsUnderWay--;
      lastUpAt = Date.now();
    };
    try {
      void Promise.resolve(fn())
        .catch((err) => logger?.warn({ deviceId, err: String(err) }, `device session ${what} hook failed`))
        .finally(done);
    } catch (err) {
      done();
      logger?.warn({ deviceId, err: String(err) }, `device session ${what} hook failed`);
    }
  };
  const upSub = bus.subscribe(Subjects.sessionUp, (msg) => {
    const event = parseEvent(msg.data);
    if (event === undefined || !opts.holds(event.deviceId)) return;
    current.set(event.deviceId, event.sessionId);
    const push = pusher.to(event.deviceId);
    for (const hook of hooks) call('up', event.deviceId, () => hook.up(event.deviceId, push));
  });
  const downSub = bus.subscribe(Subjects.sessionDown, (msg) => {
    const event = parseEvent(msg.data);
    if (event === undefined || !opts.holds(event.deviceId)) return;
    const seen = current.get(event.deviceId);
    if (seen !== undefined && seen !== event.sessionId) return;
    current.delete(event.deviceId);
    for (const hook of hooks) call('down', event.deviceId, () => hook.down(event.deviceId));
  });
  let closed = false;
  return {
    async quiet(quietMs, maxMs) {
      const end = Date.now() + maxMs;
      const start = Date.now();
      while (!closed && Date.now() < end) {
        if (upsUnderWay === 0 && Date.now() - Math.max(lastUpAt, start) >= quietMs) return;
        await new Promise((resolve) => setTimeout(resolve, Math.min(100, quietMs)));
      }
    },
    has: (deviceId) => current.has(deviceId),
    close() {
      closed = true;
      upSub.unsubscribe();
      downSub.unsubscribe();
      current.clear();
    },
  };
}

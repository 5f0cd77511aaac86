/**
 * What lets an SMS wake-up go (issue 14: SMS is the last resort, and it
 * costs the operator money): the device's service profile must allow it
 * (policies.smsWakeups), and neither the device nor its operator may have had
 * more than their share within the last hour (push.sms perDevicePerHour,
 * perOperatorPerHour).
 *
 * Here the counts of a single node, in memory, over a sliding hour; in a
 * cluster they are the cluster's (shared-sms-limits.ts), and these serve
 * only until the cluster's shared state opens and when it cannot be written.
 */
import type { DeviceProfile } from '../../store/device-profile.ts';

export const HOUR_MS = 3_600_000;

export type Admission = { ok: true; release(): void } | { ok: false; why: string };

/** Sliding windows of timestamps per key; a key's window holds at most its limit. */
class Windows {
  readonly #stamps = new Map<string, number[]>();
  constructor(
    readonly limit: number,
    readonly windowMs: number,
  ) {}

  /** The key's stamps within the window (older ones dropped). */
  live(key: string, now: number): number[] {
    const stamps = this.#stamps.get(key) ?? [];
    while (stamps.length > 0 && stamps[0]! <= now - this.windowMs) stamps.shift();
    if (stamps.length === 0) this.#stamps.delete(key);
    return stamps;
  }

  add(key: string, at: number): void {
    const stamps = this.#stamps.get(key);
    if (stamps) stamps.push(at);
    else this.#stamps.set(key, [at]);
  }

  remove(key: string, at: number): void {
    const stamps = this.#stamps.get(key);
    const i = stamps?.lastIndexOf(at) ?? -1;
    if (i >= 0) stamps!.splice(i, 1);
  }

  /** Drops keys with nothing left in the window (called now and then, so the map stays small). */
  sweep(now: number): void {
    for (const key of [...this.#stamps.keys()]) this.live(key, now);
  }

  get size(): number {
    return this.#stamps.size;
  }
}

export interface SmsLimitsOptions {
  perDevicePerHour: number;
  perOperatorPerHour: number;
  windowMs?: number;
  now?: () => number;
}

export class SmsRateLimits {
  readonly #devices: Windows;
  readonly #operators: Windows;
  readonly #now: () => number;

  constructor(opts: SmsLimitsOptions) {
    const windowMs = opts.windowMs ?? HOUR_MS;
    this.#devices = new Windows(opts.perDevicePerHour, windowMs);
    this.#operators = new Windows(opts.perOperatorPerHour, windowMs);
    this.#now = opts.now ?? Date.now;
  }

  /** Takes a slot of the device's and the operator's hour for one SMS; release() gives it back (not sent). */
  take(deviceId: string, operator: string): Admission {
    const now = this.#now();
    if (this.#devices.size > 10_000) this.#devices.sweep(now);
    if (this.#devices.live(deviceId, now).length >= this.#devices.limit) {
      return { ok: false, why: `rate limit: ${this.#devices.limit} SMS per device per hour` };
    }
    if (this.#operators.live(operator, now).length >= this.#operators.limit) {
      return { ok: false, why: `rate limit: ${this.#operators.limit} SMS per operator per hour` };
    }
    this.#devices.add(deviceId, now);
    this.#operators.add(operator, now);
    return {
      ok: true,
      release: () => {
        this.#devices.remove(deviceId, now);
        this.#operators.remove(operator, now);
      },
    };
  }
}

/** What takes a slot of the device's and the operator's hour: this node's limits, or the cluster's. */
export interface SmsLimiter {
  take(deviceId: string, operator: string): Admission | Promise<Admission>;
}

/** Admits an SMS of a device: its profile allows SMS (asked with `profileOf`), and the limits have room. */
export function smsAdmission(
  limits: SmsLimiter,
  profileOf: (deviceId: string) => Promise<DeviceProfile | undefined>,
): (deviceId: string) => Promise<Admission> {
  return async (deviceId) => {
    const profile = await profileOf(deviceId);
    if (profile?.policies.smsWakeups !== true) {
      return { ok: false, why: 'the service profile does not allow SMS wake-ups' };
    }
    return limits.take(deviceId, profile.operator ?? '');
  };
}

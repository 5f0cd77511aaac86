/**
 * The transport's view of a device's service profile (server/store/device-profile.ts),
 * asked of the admin role over the bus (Subjects.deviceProfile) and cached
 * per device for a short time, so that a burst of requests costs one
 * question. A device session coming up refreshes it (what an operator
 * changed applies from the next connect at the latest).
 *
 * A request never waits for the admin when an answer is cached, however old:
 * an expired one is used while a fresh one is asked for in the background
 * (one frozen admin node, SIGSTOPped or swapping, would otherwise hold every
 * request of a device for the bus timeout). The question itself is tried a
 * few times with a short timeout: the admin nodes answer as a queue group,
 * and each try may reach another one.
 *
 * When the admin cannot be asked (no admin node reachable), the last answer
 * is used; with none, nothing is known and nothing is refused: a service
 * profile shapes what a device gets, it is not what keeps strangers out
 * (the edge's authentication does that, and it needs the admin anyway).
 */
import type { Logger } from 'pino';
import { GatewayError, toGatewayError } from '../../device-protocol/errors.ts';
import { type Bus, Subjects } from '../bus/bus.ts';
import type { DevicePush } from './kit/device-pusher.ts';
import { type DeviceProfile, type ServiceName, serviceAllowed } from '../store/device-profile.ts';

export type DeviceProfileFetch = (deviceId: string) => Promise<DeviceProfile>;

/**
 * Asks the admin role (any admin node: a queue group answers), `tries` times
 * at most with `timeoutMs` each; only a bus timeout is tried again (no
 * responders means no admin at all, and a refusal is an answer).
 */
export function busDeviceProfileFetch(bus: Bus, timeoutMs = 1500, tries = 3): DeviceProfileFetch {
  return async (deviceId) => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await bus.request<DeviceProfile>(Subjects.deviceProfile, { imei: deviceId }, { timeoutMs });
      } catch (err) {
        if (attempt >= tries || toGatewayError(err).code !== 'bus.timeout') throw err;
      }
    }
  };
}

export interface DeviceProfilesOptions {
  /** How long an answer is used before it is asked again. Default 15 s. */
  ttlMs?: number;
  /** Most devices cached. Default 100,000. */
  maxEntries?: number;
  now?: () => number;
  logger?: Pick<Logger, 'warn'>;
}

export class DeviceProfiles {
  readonly #fetch: DeviceProfileFetch;
  readonly #ttlMs: number;
  readonly #max: number;
  readonly #now: () => number;
  readonly #logger: Pick<Logger, 'warn'> | undefined;
  readonly #cache = new Map<string, { at: number; profile: DeviceProfile }>();
  readonly #inflight = new Map<string, Promise<DeviceProfile | undefined>>();

  constructor(fetch: DeviceProfileFetch, opts: DeviceProfilesOptions = {}) {
    this.#fetch = fetch;
    this.#ttlMs = opts.ttlMs ?? 15_000;
    this.#max = opts.maxEntries ?? 100_000;
    this.#now = opts.now ?? Date.now;
    this.#logger = opts.logger;
  }

  /**
   * The device's profile (cached), or undefined when the admin was never
   * reachable for it. Waits only when nothing is cached; an expired answer is
   * returned at once and refreshed in the background.
   */
  get(deviceId: string): Promise<DeviceProfile | undefined> {
    const hit = this.#cache.get(deviceId);
    if (!hit) return this.refresh(deviceId);
    if (this.#now() - hit.at >= this.#ttlMs) void this.refresh(deviceId);
    return Promise.resolve(hit.profile);
  }

  /** Asks the admin now (one question per device at a time). */
  refresh(deviceId: string): Promise<DeviceProfile | undefined> {
    let pending = this.#inflight.get(deviceId);
    if (pending) return pending;
    pending = this.#fetch(deviceId)
      .then((profile) => {
        this.#cache.delete(deviceId);
        this.#cache.set(deviceId, { at: this.#now(), profile });
        if (this.#cache.size > this.#max) this.#cache.delete(this.#cache.keys().next().value as string);
        return profile;
      })
      .catch((err) => {
        const stale = this.#cache.get(deviceId)?.profile;
        this.#logger?.warn(
          { deviceId, code: toGatewayError(err).code, stale: stale !== undefined },
          'device service profile not available',
        );
        return stale;
      })
      .finally(() => this.#inflight.delete(deviceId));
    this.#inflight.set(deviceId, pending);
    return pending;
  }
}

/** Throws service.not_allowed when the profile leaves `service` out. */
export function assertServiceAllowed(profile: DeviceProfile | undefined, service: ServiceName): void {
  if (serviceAllowed(profile, service)) return;
  throw new GatewayError(
    'service.not_allowed',
    `The service profile ${profile?.profile ?? ''} of this device does not include ${service}.`,
  );
}

/** What a service needs to bring a device's provisioned accounts up (mail/provisioned.ts, im/provisioned.ts). */
export interface ProvisionOptions {
  deviceId: string;
  profile: DeviceProfile;
  /** Opens a provisioned secret (CredentialCipher.decrypt with its context). */
  open(sealed: string, context: string): string;
  push: DevicePush;
  now(): number;
  logger?: Pick<Logger, 'info' | 'warn'>;
}

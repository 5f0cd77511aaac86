/**
 * Log records of refused Hello/Resume attempts (kind auth_failure), sampled:
 * anyone on the internet can make refusals, thousands a second, and a record
 * each would flood the device log and the bus. Every refusal is counted in
 * mmgw_edge_auth_failures_total; a record is written for the first refusal
 * of a window of REFUSAL_WINDOW_MS, and the ones after it in the window only
 * as a number (`detail.suppressed`) in one summary record once the window is
 * over. So one window key costs at most one record a minute.
 *
 * The window key says whom the refusal is about:
 * - a provisioned device, when the refusal proves the IMEI is one (a wrong
 *   secret, a disabled device, an expired token we signed): the device's log
 *   shows that someone is trying it;
 * - else the source address (unknown IMEIs, forged tokens, made-up sessions,
 *   attempts refused by the rate limit): one record a minute per address,
 *   which the admin role files in its bounded security log when the IMEI is
 *   not provisioned (admin/records-store.ts), never in a device's log.
 *
 * Memory: at most `maxWindows` windows; the oldest goes first (its
 * suppressed count written out).
 */
import type { Recorder } from '../records/types.ts';

export const REFUSAL_WINDOW_MS = 60_000;
const MAX_WINDOWS = 10_000;

/** Refusals that only a provisioned device can get: the directory knew it, or we signed its token. */
const DEVICE_CODES: ReadonlySet<string> = new Set(['auth.bad_secret', 'auth.disabled', 'auth.token_expired']);

type CarrierKind = 'ws' | 'poll';

interface Window {
  /** The window ends here. */
  until: number;
  /** Refusals in the window after the one recorded. */
  suppressed: number;
  /** The latest refusal of the window (what its summary record names). */
  imei: string;
  code: string;
  carrier: CarrierKind;
  address: string;
}

export class RefusalRecords {
  /** In order of `until` (each window is inserted when it starts). */
  private readonly windows = new Map<string, Window>();

  constructor(
    private readonly recorder: Recorder,
    private readonly maxWindows = MAX_WINDOWS,
  ) {}

  /** Windows open (for tests). */
  get size(): number {
    return this.windows.size;
  }

  /** A Hello or Resume for `imei` from `address` was refused with `code` at `now`; true when a record was written. */
  refused(imei: string, carrier: CarrierKind, code: string, address: string, now: number): boolean {
    const key = DEVICE_CODES.has(code) ? `device ${imei}` : `address ${address}`;
    const w = this.windows.get(key);
    if (w !== undefined && now < w.until) {
      w.suppressed++;
      w.imei = imei;
      w.code = code;
      w.carrier = carrier;
      return false;
    }
    // A window over but not summarised yet (the flush runs once a minute): its count rides along.
    const earlier = w?.suppressed ?? 0;
    if (w !== undefined) this.windows.delete(key);
    else if (this.windows.size >= this.maxWindows) this.evictOldest(now);
    this.windows.set(key, { until: now + REFUSAL_WINDOW_MS, suppressed: 0, imei, code, carrier, address });
    this.write(now, imei, code, carrier, address, earlier, false);
    return true;
  }

  /** Summarises the windows that are over and forgets the quiet ones (the sweep calls it once a minute). */
  flush(now: number): void {
    const over: [string, Window][] = [];
    for (const entry of this.windows) {
      if (now < entry[1].until) break;
      over.push(entry);
    }
    for (const [key, w] of over) {
      this.windows.delete(key);
      if (w.suppressed === 0) continue;
      this.write(now, w.imei, w.code, w.carrier, w.address, w.suppressed, true);
      // A new window from now: the summary counts as this key's record of the minute.
      this.windows.set(key, { ...w, until: now + REFUSAL_WINDOW_MS, suppressed: 0 });
    }
  }

  private evictOldest(now: number): void {
    const first = this.windows.entries().next().value;
    if (first === undefined) return;
    const [key, w] = first;
    this.windows.delete(key);
    if (w.suppressed > 0) this.write(now, w.imei, w.code, w.carrier, w.address, w.suppressed, true);
  }

  private write(
    at: number,
    imei: string,
    code: string,
    carrier: CarrierKind,
    address: string,
    suppressed: number,
    summary: boolean,
  ): void {
    this.recorder.log({
      at,
      imei,
      kind: 'auth_failure',
      service: 'session',
      code,
      ...(summary
        ? { message: `${suppressed} more refused attempts since the last record (the latest: ${code})` }
        : {}),
      detail: {
        carrier,
        ...(address === '' ? {} : { address }),
        ...(suppressed > 0 ? { suppressed } : {}),
      },
    });
  }
}

/**
 * Last-seen times of devices, batched: noted in memory at every
 * authentication and written in one transaction every few seconds (and on
 * close), because a write per authentication would make the registry the
 * bottleneck of a reconnect storm.
 */
import type { Database } from 'lmdb';
import { DEVICE_RECORD_VERSION, type DeviceRecordV1, readDeviceRecord } from './records.ts';

export interface LastSeenHost {
  devices: Database<DeviceRecordV1, string>;
  now: () => number;
  /** A closed registry writes nothing more. */
  isClosed: () => boolean;
}

export class LastSeen {
  private readonly pending = new Map<string, number>();
  private readonly timer: NodeJS.Timeout;
  private flushing: Promise<void> = Promise.resolve();

  constructor(
    private readonly h: LastSeenHost,
    flushMs: number,
  ) {
    this.timer = setInterval(() => void this.flush(), flushMs);
    this.timer.unref();
  }

  /** Notes that a device was seen; a time older than the pending one is ignored. */
  touch(imei: string, at: number = this.h.now()): void {
    const prev = this.pending.get(imei);
    if (prev === undefined || at > prev) this.pending.set(imei, at);
  }

  /** Drops the pending time of a removed device. */
  forget(imei: string): void {
    this.pending.delete(imei);
  }

  /** Writes pending times now; a stored time at least as new is kept. */
  flush(): Promise<void> {
    if (this.pending.size === 0 || this.h.isClosed()) return this.flushing;
    const batch = new Map(this.pending);
    this.pending.clear();
    const { devices } = this.h;
    this.flushing = this.flushing
      .then(() =>
        devices.transaction(() => {
          for (const [imei, at] of batch) {
            const raw = devices.get(imei);
            if (raw === undefined) continue;
            const record = readDeviceRecord(raw);
            if ((record.lastSeenAt ?? 0) >= at) continue;
            devices.put(imei, { ...record, v: DEVICE_RECORD_VERSION, lastSeenAt: at });
          }
        }),
      )
      .then(
        () => undefined,
        () => undefined,
      );
    return this.flushing;
  }

  /** Stops the periodic flush (the caller flushes once more before closing). */
  stop(): void {
    clearInterval(this.timer);
  }
}

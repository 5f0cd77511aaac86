/**
 * Last-seen times of devices, batched: noted in memory at every
 * authentication and written every few seconds (and on close), in one
 * transaction on lmdb and a few devices in flight at a time on the shared
 * state, because a write per authentication would make the
 * registry the bottleneck of a reconnect storm. Each change keeps the newer
 * time, so two admin nodes noting one device agree whatever their order.
 */
import { DEVICE_RECORD_VERSION, type DeviceRecordV1 } from './records.ts';
import type { RegistryTable } from './registry-table.ts';

export interface LastSeenHost {
  devices: RegistryTable<DeviceRecordV1>;
  now: () => number;
  /** A closed registry writes nothing more. */
  isClosed: () => boolean;
}

export class LastSeen {
  private pending = new Map<string, number>();
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
    // Handed over, not copied: a reconnect storm notes a time for every device.
    const batch = this.pending;
    this.pending = new Map();
    const { devices } = this.h;
    this.flushing = this.flushing
      .then(() =>
        devices.changeEach(batch.keys(), (imei, record) => {
          const at = batch.get(imei) ?? 0;
          if (record === undefined || (record.lastSeenAt ?? 0) >= at) return undefined;
          return { ...record, v: DEVICE_RECORD_VERSION, lastSeenAt: at };
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

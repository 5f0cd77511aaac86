/**
 * The sessions of one edge, by device. One map only: a session id names its
 * device (`<imei>.<random>`), so a lookup by id is a lookup by IMEI plus a
 * comparison, and an idle session costs one map entry here.
 */
import { imeiOfSessionId } from './auth.ts';
import type { DeviceSession } from './device-session.ts';

export class SessionTable {
  private readonly byImei = new Map<string, DeviceSession>();

  get size(): number {
    return this.byImei.size;
  }

  get(imei: string): DeviceSession | undefined {
    return this.byImei.get(imei);
  }

  getById(sessionId: string): DeviceSession | undefined {
    const imei = imeiOfSessionId(sessionId);
    if (imei === undefined) return undefined;
    const s = this.byImei.get(imei);
    return s !== undefined && s.id === sessionId ? s : undefined;
  }

  /** Adds a session; the device must not have one here already. */
  add(session: DeviceSession): void {
    if (this.byImei.has(session.imei)) throw new Error(`device ${session.imei} already has a session here`);
    this.byImei.set(session.imei, session);
  }

  remove(session: DeviceSession): void {
    if (this.byImei.get(session.imei) === session) this.byImei.delete(session.imei);
  }

  values(): IterableIterator<DeviceSession> {
    return this.byImei.values();
  }
}

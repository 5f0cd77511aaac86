/**
 * Writes to single devices in the registry's `devices` table, each one
 * read-check-write of the device's key (registry-table.ts) with what follows
 * from it (DeviceIndexes: the IMSI index entry, a removed device's accounts)
 * and, when the change names who made it, its audit entry (audit-outbox.ts).
 * On lmdb all of it commits in one transaction; on the shared state the
 * device's compare-and-set decides, and what follows is written after it.
 * Told IMEIs go to the registry's change listeners (DeviceWritesHost.changed).
 */
import { GatewayError } from '../../device-protocol/errors.ts';
import { type AuditActor, type AuditOutbox, deviceAuditView } from './audit-outbox.ts';
import { assertImei } from './imei.ts';
import { type ImportRow, importRowProblem, type NewDevice, prepareImportRow } from './import-rows.ts';
import {
  type Device,
  DEVICE_RECORD_VERSION,
  type DeviceRecordV1,
  type DeviceStatus,
  deviceView,
} from './records.ts';
import type { RegistryTable } from './registry-table.ts';
import { generateDeviceSecret, hashDeviceSecret } from './secrets.ts';

/** A change to a device: undefined keeps a field, null clears an optional one. */
export interface DevicePatch {
  imsi?: string | null;
  operator?: string;
  profile?: string | null;
  operatorProfile?: string | null;
  model?: string | null;
  status?: DeviceStatus;
}

/** What follows from a device change besides its record: the backend's indexes and cascades. */
export interface DeviceIndexes {
  /** Inside the device's change: its IMSI moved from `before` to `after` (either may be absent). */
  imsiMoved(imei: string, before: string | undefined, after: string | undefined): void;
  /** Inside the device's removal: its accounts go with it (lmdb: in the same transaction). */
  removedInChange(imei: string): void;
  /** After the device's removal was stored (the shared state: its accounts, one key at a time). */
  removedAfter(imei: string): Promise<void>;
}

export interface DeviceWritesHost {
  devices: RegistryTable<DeviceRecordV1>;
  indexes: DeviceIndexes;
  outbox: Pick<AuditOutbox, 'put'>;
  now: () => number;
  /** Throws when the registry is closed. */
  assertOpen: () => void;
  /** The IMEIs of a committed change. */
  changed: (imeis: string[]) => void;
  /** A removed device's pending last-seen time is dropped. */
  forgetLastSeen: (imei: string) => void;
}

export class DeviceWrites {
  constructor(private readonly h: DeviceWritesHost) {}

  /** Provisions a device. The secret is returned once and never stored (only its hash). */
  async add(input: NewDevice, audit?: AuditActor): Promise<{ device: Device; secret: string }> {
    this.h.assertOpen();
    const problem = importRowProblem({ ...input });
    if (problem) throw new GatewayError(problem.code, problem.reason, { field: problem.field });
    // A single add hands out a generated secret only (no provisioned one, unlike an import row).
    const { record, secret } = prepareImportRow({ ...input, secret: undefined }, this.h.now());
    const added = await this.h.devices.change(
      record.imei,
      (current) => (current ? { result: false } : { put: record, result: true }),
      ({ result }) => {
        if (!result) return;
        this.h.indexes.imsiMoved(record.imei, undefined, record.imsi);
        if (audit)
          this.h.outbox.put(
            audit,
            'device.create',
            `device:${record.imei}`,
            undefined,
            deviceAuditView(deviceView(record)),
          );
      },
    );
    if (!added) {
      throw new GatewayError('registry.duplicate', `a device with IMEI ${input.imei} already exists`, {
        field: 'imei',
      });
    }
    this.h.changed([record.imei]);
    return { device: deviceView(record), secret };
  }

  async setStatus(imei: string, status: DeviceStatus, audit?: AuditActor): Promise<Device> {
    if (status !== 'enabled' && status !== 'disabled') {
      throw new GatewayError(
        'registry.invalid_field',
        `status ${JSON.stringify(status)}: enabled or disabled`,
        {
          field: 'status',
        },
      );
    }
    const action = status === 'enabled' ? 'device.enable' : 'device.disable';
    return this.update(imei, (r) => ({ ...r, status }), audit && { who: audit, action });
  }

  /** Replaces the secret (the old one stops working at once); the new one is returned once. */
  async resetSecret(imei: string, audit?: AuditActor): Promise<{ device: Device; secret: string }> {
    const secret = generateDeviceSecret();
    const device = await this.update(
      imei,
      (r) => ({ ...r, secretHash: hashDeviceSecret(secret) }),
      audit && { who: audit, action: 'device.reset_secret', noRecords: true },
    );
    return { device, secret };
  }

  async remove(imei: string, audit?: AuditActor): Promise<void> {
    this.h.assertOpen();
    const removed = await this.h.devices.change(
      imei,
      (current) => (current ? { remove: true, result: true } : { result: false }),
      ({ result }, before) => {
        if (!result || !before) return;
        this.h.indexes.imsiMoved(imei, before.imsi, undefined);
        this.h.indexes.removedInChange(imei);
        if (audit)
          this.h.outbox.put(audit, 'device.remove', `device:${imei}`, deviceAuditView(deviceView(before)));
      },
    );
    if (!removed) throw notFound(imei);
    await this.h.indexes.removedAfter(imei);
    this.h.forgetLastSeen(imei);
    this.h.changed([imei]);
  }

  /** Changes the fields given (checked like a new row); the status too. */
  async patch(imei: string, patch: DevicePatch): Promise<Device> {
    this.h.assertOpen();
    if (!this.h.devices.has(imei)) throw notFound(imei);
    // Merged with the record the write replaces (not one read before it), so that a change
    // made meanwhile (another admin node, another process) to a field not in the patch is kept.
    return this.update(imei, (r) => {
      const current = deviceView(r);
      const merged: ImportRow = { imei, operator: patch.operator ?? current.operator };
      for (const key of ['imsi', 'profile', 'operatorProfile', 'model'] as const) {
        const value = patch[key] === undefined ? current[key] : (patch[key] ?? undefined);
        if (value !== undefined) merged[key] = value;
      }
      if (patch.status !== undefined) merged.status = patch.status;
      const problem = importRowProblem(merged);
      if (problem) throw new GatewayError(problem.code, problem.reason, { field: problem.field });
      const next: DeviceRecordV1 = { ...r, operator: merged.operator };
      for (const key of ['imsi', 'profile', 'operatorProfile', 'model'] as const) {
        if (merged[key] === undefined) delete next[key];
        else next[key] = merged[key];
      }
      if (merged.status !== undefined) next.status = merged.status;
      return next;
    });
  }

  /** The shared read-change-write of one device; registry.not_found when absent. */
  private async update(
    imei: string,
    change: (r: DeviceRecordV1) => DeviceRecordV1,
    audit?: { who: AuditActor; action: string; noRecords?: boolean },
  ): Promise<Device> {
    this.h.assertOpen();
    assertImei(imei);
    const updated = await this.h.devices.change(
      imei,
      (before) => {
        if (before === undefined) return { result: undefined };
        const record = { ...change(before), v: DEVICE_RECORD_VERSION } as DeviceRecordV1;
        return { put: record, result: record };
      },
      ({ result: record }, before) => {
        if (!record || !before) return;
        if (before.imsi !== record.imsi) this.h.indexes.imsiMoved(imei, before.imsi, record.imsi);
        if (audit)
          this.h.outbox.put(
            audit.who,
            audit.action,
            `device:${imei}`,
            audit.noRecords ? undefined : deviceAuditView(deviceView(before)),
            audit.noRecords ? undefined : deviceAuditView(deviceView(record)),
          );
      },
    );
    if (updated === undefined) throw notFound(imei);
    this.h.changed([imei]);
    return deviceView(updated);
  }
}

function notFound(imei: string): GatewayError {
  return new GatewayError('registry.not_found', `no device with IMEI ${imei}`, { field: 'imei' });
}

/**
 * Writes to single devices in the registry's `devices` database, each one
 * read-check-write in one transaction with its IMSI index entry and, when the
 * change names who made it, its audit entry (audit-outbox.ts). Told IMEIs go
 * to the registry's change listeners (DeviceWritesHost.changed).
 */
import type { Database } from 'lmdb';
import { GatewayError } from '../../device-protocol/errors.ts';
import { type AuditActor, type AuditOutbox, deviceAuditView } from './audit-outbox.ts';
import { assertImei } from './imei.ts';
import { type ImportRow, importRowProblem, type NewDevice } from './import-rows.ts';

export type { NewDevice } from './import-rows.ts';
import type { ProvisionedAccountRecord } from './provisioned-accounts.ts';
import {
  type Device,
  DEVICE_RECORD_VERSION,
  type DeviceRecordV1,
  type DeviceStatus,
  deviceView,
  readDeviceRecord,
} from './records.ts';
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

export interface DeviceWritesHost {
  devices: Database<DeviceRecordV1, string>;
  /** The IMSI index: `<imsi>:<imei>` → true. */
  imsis: Database<boolean, string>;
  /** A removed device's accounts go with it. */
  accounts: Database<ProvisionedAccountRecord, string[]>;
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
    const secret = generateDeviceSecret();
    const record: DeviceRecordV1 = {
      v: DEVICE_RECORD_VERSION,
      imei: input.imei,
      ...(input.imsi ? { imsi: input.imsi } : {}),
      operator: input.operator,
      ...(input.profile ? { profile: input.profile } : {}),
      ...(input.operatorProfile ? { operatorProfile: input.operatorProfile } : {}),
      ...(input.model ? { model: input.model } : {}),
      status: input.status ?? 'enabled',
      createdAt: this.h.now(),
      secretHash: hashDeviceSecret(secret),
    };
    const added = await this.h.devices.transaction(() => {
      if (this.h.devices.doesExist(record.imei)) return false;
      this.h.devices.put(record.imei, record);
      if (record.imsi) this.h.imsis.put(`${record.imsi}:${record.imei}`, true);
      if (audit)
        this.h.outbox.put(
          audit,
          'device.create',
          `device:${record.imei}`,
          undefined,
          deviceAuditView(deviceView(record)),
        );
      return true;
    });
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
    const removed = await this.h.devices.transaction(() => {
      const raw = this.h.devices.get(imei);
      if (raw === undefined) return false;
      if (raw.imsi) this.h.imsis.remove(`${raw.imsi}:${imei}`);
      this.h.devices.remove(imei);
      for (const key of this.h.accounts.getKeys({ start: [imei], end: [imei, '\uffff'] })) {
        this.h.accounts.remove(key);
      }
      if (audit)
        this.h.outbox.put(
          audit,
          'device.remove',
          `device:${imei}`,
          deviceAuditView(deviceView(readDeviceRecord(raw))),
        );
      return true;
    });
    if (!removed) throw notFound(imei);
    this.h.forgetLastSeen(imei);
    this.h.changed([imei]);
  }

  /** Changes the fields given (checked like a new row); the status too. */
  async patch(imei: string, patch: DevicePatch): Promise<Device> {
    this.h.assertOpen();
    const raw = this.h.devices.get(imei);
    const current = raw === undefined ? undefined : deviceView(readDeviceRecord(raw));
    if (current === undefined) throw notFound(imei);
    const merged: ImportRow = { imei, operator: patch.operator ?? current.operator };
    for (const key of ['imsi', 'profile', 'operatorProfile', 'model'] as const) {
      const value = patch[key] === undefined ? current[key] : (patch[key] ?? undefined);
      if (value !== undefined) merged[key] = value;
    }
    if (patch.status !== undefined) merged.status = patch.status;
    const problem = importRowProblem(merged);
    if (problem) throw new GatewayError(problem.code, problem.reason, { field: problem.field });
    return this.update(imei, (r) => {
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
    const updated = await this.h.devices.transaction(() => {
      const raw = this.h.devices.get(imei);
      if (raw === undefined) return undefined;
      const before = readDeviceRecord(raw);
      const record = { ...change(before), v: DEVICE_RECORD_VERSION } as DeviceRecordV1;
      this.h.devices.put(imei, record);
      if (raw.imsi !== record.imsi) {
        if (raw.imsi) this.h.imsis.remove(`${raw.imsi}:${imei}`);
        if (record.imsi) this.h.imsis.put(`${record.imsi}:${imei}`, true);
      }
      if (audit)
        this.h.outbox.put(
          audit.who,
          audit.action,
          `device:${imei}`,
          audit.noRecords ? undefined : deviceAuditView(deviceView(before)),
          audit.noRecords ? undefined : deviceAuditView(deviceView(record)),
        );
      return record;
    });
    if (updated === undefined) throw notFound(imei);
    this.h.changed([imei]);
    return deviceView(updated);
  }
}

function notFound(imei: string): GatewayError {
  return new GatewayError('registry.not_found', `no device with IMEI ${imei}`, { field: 'imei' });
}

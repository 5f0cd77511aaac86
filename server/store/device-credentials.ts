/**
 * What a device's stored record tells the edge at authentication: its key
 * epoch (from the secret's hash), and the heartbeat its profiles ask for.
 * Pure: the reference data is read through the function the caller passes.
 */
import { createHash } from 'node:crypto';
import type { DeviceInfo } from '../bus/bus.ts';
import type { DeviceRecordV1 } from './records.ts';
import type { RefRecord } from './ref-store.ts';

/** Changes with the secret: tokens issued under an older secret are refused. */
export function deviceKeyEpoch(r: DeviceRecordV1): string {
  return createHash('sha256').update(r.secretHash).digest('base64url').slice(0, 12);
}

export function deviceInfo(r: DeviceRecordV1, heartbeatMs: number | undefined): DeviceInfo {
  const info: DeviceInfo = {
    imei: r.imei,
    operator: r.operator,
    status: r.status,
    keyEpoch: deviceKeyEpoch(r),
  };
  if (r.profile !== undefined) info.profile = r.profile;
  if (heartbeatMs !== undefined) info.heartbeatMs = heartbeatMs;
  return info;
}

/**
 * The heartbeat the device's profiles ask for: its service profile's
 * policies.heartbeatMs, else its operator profile's heartbeatMs (the
 * network's); the edge brings it within its bounds (server/edge/heartbeat.ts).
 */
export function profileHeartbeatMs(
  r: DeviceRecordV1,
  getRef: (kind: string, id: string) => RefRecord | undefined,
): number | undefined {
  const policies = r.profile === undefined ? undefined : getRef('service-profiles', r.profile)?.data.policies;
  const fromService = (policies as Record<string, unknown> | undefined)?.heartbeatMs;
  if (Number.isInteger(fromService)) return fromService as number;
  const fromOperator =
    r.operatorProfile === undefined
      ? undefined
      : getRef('operator-profiles', r.operatorProfile)?.data.heartbeatMs;
  return Number.isInteger(fromOperator) ? (fromOperator as number) : undefined;
}

/**
 * Public surface of the store: the device registry and its bus-side client,
 * device profiles, the device CSV and import jobs, the audit outbox; the
 * shared-state layer (shared/: lmdb single node, JetStream KV in a cluster)
 * and the device auth records edges read from it (device-auth.ts).
 */
export { type AuditActor, deviceAuditView, type OutboxEntry } from './audit-outbox.ts';
export {
  csvLine,
  DEVICE_CSV_COLUMNS,
  DEVICE_CSV_HEADER_HELP,
  deviceCsvHeader,
  deviceCsvLine,
  DeviceCsvError,
} from './device-csv.ts';
export { DEFAULT_IMPORT_MAX_ROWS, type ImportOutcome, importDeviceCsv } from './device-import.ts';
export {
  type DeviceProfile,
  deviceProfile,
  type ProvisionedAccount,
  SERVICE_NAMES,
  type ServiceName,
  setDeviceAccount,
  WAKEUP_PREVIEWS,
  type WakeupPreview,
} from './device-profile.ts';
export type { ImportJob, Sealer } from './import-jobs.ts';
export { importResultSealer } from './import-sealer.ts';
export { busDeviceDirectory } from './directory.ts';
export {
  authenticateFrom,
  DEVICE_AUTH_TABLE,
  type DeviceAuthRecordV1,
  type DeviceAuthSharing,
  lookupFrom,
  openDeviceAuthTable,
  readDeviceAuthRecord,
  sharedDeviceDirectory,
  startDeviceAuthSharing,
} from './device-auth.ts';
export {
  type ClusterStateLease,
  isClusterMode,
  leaseClusterState,
  leasedOpener,
  stateReplicas,
  stateServers,
} from './shared/cluster.ts';
export { LmdbSharedState } from './shared/lmdb.ts';
export { jetStreamMissing, NatsKvSharedState } from './shared/nats-kv.ts';
export {
  modify,
  type SharedChange,
  type SharedEntry,
  type SharedState,
  type SharedTable,
  type TableOptions,
} from './shared/table.ts';
export {
  assertImei,
  assertImsi,
  imeiProblem,
  imeiWithCheckDigit,
  imsiProblem,
  isValidImei,
  luhnCheckDigit,
} from './imei.ts';
export type { AdminRole, AdminUserRecordV1, Device, DeviceRecordV1, DeviceStatus } from './records.ts';
export {
  type AdminUser,
  type ImportMode,
  type ImportRejection,
  type ImportResult,
  type ImportRow,
  importRowProblem,
  type ListDevicesOptions,
  type NewDevice,
  Registry,
  type RegistryOptions,
} from './registry.ts';
export {
  ADMIN_PASSWORD_LENGTH,
  adminPasswordProblem,
  generateDeviceSecret,
  hashDeviceSecret,
  verifyDeviceSecret,
} from './secrets.ts';

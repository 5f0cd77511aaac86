/** Public surface of the store: the device registry and its bus-side client. */
export { busDeviceDirectory } from './directory.ts';
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
export { generateDeviceSecret, hashDeviceSecret, verifyDeviceSecret } from './secrets.ts';

/**
 * Public surface of the server for the other folders (admin, transcoder): the
 * bus contract and its implementations, the device registry and what the
 * admin does with it, device log records, the ops endpoint, routing, the
 * outbound destination policy, the credentials cipher, and the types of the
 * role table and the config.
 *
 * Not the roles: ESM evaluates every module an index re-exports, so the edge,
 * the transport (imapflow, nodemailer, @xmpp), the supervisor and the CLI stay
 * out of it. node.ts loads each role's role.ts by dynamic import when the
 * config asks for that role, and no process pays for the roles it does not run.
 */
export {
  type Alarm,
  ALARM_KINDS,
  ALARM_SEVERITIES,
  type AlarmKind,
  type AlarmRecord,
  type AlarmSeverity,
} from './alarms/alarm.ts';
export { AlarmBook } from './alarms/alarm-book.ts';
export type { AlarmHistory, StoredAlarm } from './alarms/history.ts';
export { MemoryAlarmHistory } from './alarms/history.ts';
export {
  type AlarmService,
  reportTakeover,
  startAlarmService,
  type TakeoverEvent,
} from './alarms/service.ts';
export * from './bus/index.ts';
export type { Config, LoadConfigOptions, Role, RoleName } from './config.ts';
export {
  allowListFrom,
  DestinationPolicy,
  type DestinationPolicyOptions,
  type OutboundService,
  SERVICE_PORTS,
} from './net/destination-policy.ts';
export * from './ops/index.ts';
export { type BusRecorder, createBusRecorder, type RecordBatch } from './records/recorder.ts';
export {
  DEVICE_LOG_KINDS,
  type DeviceLogKind,
  type DeviceLogRecord,
  nullRecorder,
  OUTSIDER_LOG_KINDS,
  type Recorder,
  type UsageDelta,
  WAKEUP_LATENCY_BOUNDS_S,
  type WakeupDelta,
} from './records/types.ts';
export type { RoleContext, RoleDefinition, RoleHandle } from './roles.ts';
export * from './router/index.ts';
export * from './store/index.ts';
export { CredentialCipher, type CredentialKeyOptions, loadCredentialKey } from './transport/credentials.ts';
export type {
  PushAdminReply,
  PushAdminRequest,
  PushChannelView,
} from './transport/push/admin-view.ts';

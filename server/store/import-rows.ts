/**
 * Device rows as an import (or a single add) gives them: checked on their own,
 * then prepared into records outside any transaction. Pure: no database, no
 * clock (the caller passes `now`); the registry and the import jobs check rows
 * against the stored devices themselves.
 */
import { imeiProblem, imsiProblem } from './imei.ts';
import { type Device, DEVICE_RECORD_VERSION, type DeviceRecordV1 } from './records.ts';
import { generateDeviceSecret, hashDeviceSecret } from './secrets.ts';

/** A device to provision: its record's fields but the times, the status optional (default enabled). */
export type NewDevice = Omit<Device, 'status' | 'createdAt' | 'lastSeenAt'> & Partial<Pick<Device, 'status'>>;

export interface ImportRow extends NewDevice {
  /** A secret provisioned elsewhere (for example at the factory); generated when absent. */
  secret?: string;
  /** Where the row came from (file line number), echoed back in rejections. */
  line?: number;
}

export interface ImportRejection {
  line?: number;
  imei?: string;
  code: 'registry.invalid_imei' | 'registry.invalid_imsi' | 'registry.invalid_field' | 'registry.duplicate';
  reason: string;
  /** The column at fault. */
  field?: string;
}

export type ImportMode = 'all-or-nothing' | 'valid-only';

export interface ImportResult {
  mode: ImportMode;
  total: number;
  written: number;
  rejected: ImportRejection[];
  /** One-time secrets of the devices written (those whose row gave none are generated here). */
  secrets: Array<{ imei: string; secret: string }>;
}

/** A row made into the record to store and the one-time secret to hand out. */
export interface PreparedImportRow {
  line?: number;
  record: DeviceRecordV1;
  secret: string;
}

const OPERATOR_MAX = 64;
const PROFILE_MAX = 64;
/** A presented secret longer than this cannot be ours (ours are 43 chars); refuse before hashing. */
export const SECRET_MAX = 256;
/** A provisioned (imported) secret must carry at least 128 bits: 22 base64url characters. */
const IMPORTED_SECRET_MIN = 22;

function fieldProblem(
  name: 'operator' | 'profile' | 'operatorProfile' | 'model',
  value: unknown,
  required: boolean,
): string | undefined {
  if (value === undefined || value === '') return required ? `${name} is missing` : undefined;
  const max = name === 'operator' ? OPERATOR_MAX : PROFILE_MAX;
  if (typeof value !== 'string' || !/^[A-Za-z0-9._:@-]+$/.test(value) || value.length > max) {
    return `${name} ${JSON.stringify(value)}: use 1-${max} letters, digits or . _ : @ -`;
  }
  return undefined;
}

/** Checks one row on its own (not against the registry); the first problem found, or undefined. */
export function importRowProblem(row: ImportRow): ImportRejection | undefined {
  const at = { line: row.line, imei: typeof row.imei === 'string' && row.imei !== '' ? row.imei : undefined };
  const imei = imeiProblem(row.imei);
  if (imei) return { ...at, code: 'registry.invalid_imei', reason: imei, field: 'imei' };
  if (row.imsi !== undefined && row.imsi !== '') {
    const imsi = imsiProblem(row.imsi);
    if (imsi) return { ...at, code: 'registry.invalid_imsi', reason: imsi, field: 'imsi' };
  }
  const operator = fieldProblem('operator', row.operator, true);
  if (operator) return { ...at, code: 'registry.invalid_field', reason: operator, field: 'operator' };
  const profile = fieldProblem('profile', row.profile, false);
  if (profile) return { ...at, code: 'registry.invalid_field', reason: profile, field: 'profile' };
  for (const name of ['operatorProfile', 'model'] as const) {
    const problem = fieldProblem(name, row[name], false);
    if (problem) return { ...at, code: 'registry.invalid_field', reason: problem, field: name };
  }
  if (row.status !== undefined && row.status !== 'enabled' && row.status !== 'disabled') {
    const reason = `status ${JSON.stringify(row.status)}: enabled or disabled`;
    return { ...at, code: 'registry.invalid_field', reason, field: 'status' };
  }
  if (row.secret !== undefined && row.secret !== '') {
    if (
      !/^[A-Za-z0-9_-]+$/.test(row.secret) ||
      row.secret.length < IMPORTED_SECRET_MIN ||
      row.secret.length > SECRET_MAX
    ) {
      return {
        ...at,
        code: 'registry.invalid_field',
        reason: `secret: ${IMPORTED_SECRET_MIN}-${SECRET_MAX} base64url characters`,
        field: 'secret',
      };
    }
  }
  return undefined;
}

/**
 * The record of a new device and its one-time secret (the row's own, or a
 * generated one); only the secret's hash is kept. Outside any transaction:
 * hashing is what keeps the write lock short.
 */
export function prepareImportRow(row: ImportRow, now: number): PreparedImportRow {
  const secret = row.secret || generateDeviceSecret();
  // Assigned one by one, not spread: this runs once a row, and spreads are what a large import's heap grew on.
  const record: DeviceRecordV1 = {
    v: DEVICE_RECORD_VERSION,
    imei: row.imei,
    operator: row.operator,
    status: row.status ?? 'enabled',
    createdAt: now,
    secretHash: hashDeviceSecret(secret),
  };
  if (row.imsi) record.imsi = row.imsi;
  if (row.profile) record.profile = row.profile;
  if (row.operatorProfile) record.operatorProfile = row.operatorProfile;
  if (row.model) record.model = row.model;
  const prepared: PreparedImportRow = { record, secret };
  if (row.line !== undefined) prepared.line = row.line;
  return prepared;
}

/**
 * Splits rows into the rejected (a problem of their own, or an IMEI seen on
 * an earlier row) and the candidates still to be checked against the registry.
 */
export function screenImportRows(rows: ImportRow[]): {
  rejected: ImportRejection[];
  candidates: ImportRow[];
} {
  const rejected: ImportRejection[] = [];
  const candidates: ImportRow[] = [];
  const seen = new Map<string, number | undefined>();
  for (const row of rows) {
    const problem = importRowProblem(row);
    if (problem) rejected.push(problem);
    else if (seen.has(row.imei)) {
      const first = seen.get(row.imei);
      rejected.push({
        line: row.line,
        imei: row.imei,
        code: 'registry.duplicate',
        reason:
          `IMEI ${row.imei} appears twice in the import` +
          (first === undefined ? '' : ` (first on line ${first})`),
      });
    } else {
      seen.set(row.imei, row.line);
      candidates.push(row);
    }
  }
  return { rejected, candidates };
}

/** In file order (rows without a line first); sorts in place. */
export function sortRejections(list: ImportRejection[]): ImportRejection[] {
  return list.sort((a, b) => (a.line ?? 0) - (b.line ?? 0));
}

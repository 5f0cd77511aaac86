/**
 * Devices as CSV, with one column set for every way in and out: `mmgw device
 * export` / `import`, GET /api/v1/devices/export.csv and POST
 * /api/v1/devices/import, and the admin UI's import template. An export
 * imports unchanged: createdAt and lastSeenAt are the registry's own and are
 * read past, and a secret (provisioned elsewhere, never exported) may be added.
 * `profile`, the CLI's name for serviceProfile before the column sets were
 * one, is still read, so older files keep importing.
 *
 * Underneath, just enough CSV (RFC 4180): comma separator, double quotes
 * around fields that need them, "" for a quote inside, CRLF or LF line ends.
 * Each record remembers the line it starts on, so that a rejection can point
 * at the line an operator sees in an editor.
 *
 * No node: imports: the admin UI bundles this file for its template.
 */
import type { Device } from './records.ts';
import type { ImportRejection, ImportRow } from './registry.ts';

export interface CsvRecord {
  line: number;
  fields: string[];
}

export function parseCsv(text: string): CsvRecord[] {
  const records: CsvRecord[] = [];
  let fields: string[] = [];
  let field = '';
  let quoted = false;
  let line = 1;
  let start = 1;
  let fieldStarted = false;
  const endRecord = () => {
    fields.push(field);
    // A blank line is no record.
    if (!(fields.length === 1 && fields[0] === '' && !fieldStarted)) records.push({ line: start, fields });
    fields = [];
    field = '';
    fieldStarted = false;
  };
  // Skip a UTF-8 byte order mark left by spreadsheet programs.
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  for (; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i++;
        } else quoted = false;
      } else {
        if (c === '\n') line++;
        field += c;
      }
      continue;
    }
    if (c === '"' && field === '') {
      quoted = true;
      fieldStarted = true;
    } else if (c === ',') {
      fields.push(field);
      field = '';
      fieldStarted = true;
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      endRecord();
      line++;
      start = line;
    } else {
      field += c;
      fieldStarted = true;
    }
  }
  if (field !== '' || fields.length > 0 || fieldStarted) endRecord();
  return records;
}

export function csvField(value: string | number | undefined): string {
  if (value === undefined) return '';
  const s = String(value);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function csvLine(values: Array<string | number | undefined>): string {
  return values.map(csvField).join(',') + '\n';
}

// ---- the device column set ------------------------------------------------

/** What an export writes, in this order. */
export const DEVICE_CSV_COLUMNS = [
  'imei',
  'imsi',
  'operator',
  'operatorProfile',
  'serviceProfile',
  'model',
  'status',
  'createdAt',
  'lastSeenAt',
] as const;

/** Kept by the registry: exported for the record, read past on import. */
const REGISTRY_KEPT: readonly string[] = ['createdAt', 'lastSeenAt'];

/** The columns an operator fills in: the import template. */
export const DEVICE_CSV_TEMPLATE = DEVICE_CSV_COLUMNS.filter((c) => !REGISTRY_KEPT.includes(c));

export const DEVICE_CSV_REQUIRED: readonly string[] = ['imei', 'operator'];

/** Read on import only: a secret provisioned elsewhere, and the old name of serviceProfile. */
const IMPORT_ONLY = ['secret', 'profile'];

/** Every column an import accepts. */
export const DEVICE_CSV_IMPORT_COLUMNS: readonly string[] = [...DEVICE_CSV_COLUMNS, ...IMPORT_ONLY];

/** The header rules in words, for the CLI's help and the API document. */
export const DEVICE_CSV_HEADER_HELP =
  `${DEVICE_CSV_REQUIRED.join(',')} required; ` +
  `${[...DEVICE_CSV_TEMPLATE.filter((c) => !DEVICE_CSV_REQUIRED.includes(c)), 'secret'].join(',')} optional ` +
  `(profile for serviceProfile); ${REGISTRY_KEPT.join(',')} (as exported) read past`;

function iso(ms: number | undefined): string {
  return ms === undefined ? '' : new Date(ms).toISOString();
}

export function deviceCsvHeader(): string {
  return csvLine([...DEVICE_CSV_COLUMNS]);
}

/** One device as a line of DEVICE_CSV_COLUMNS (the registry's `profile` is the service profile). */
export function deviceCsvLine(d: Device): string {
  return csvLine([
    d.imei,
    d.imsi,
    d.operator,
    d.operatorProfile,
    d.profile,
    d.model,
    d.status,
    iso(d.createdAt),
    iso(d.lastSeenAt),
  ]);
}

/** Why a file cannot be imported at all; `line` is absent when there is no header. */
export interface DeviceCsvHeaderProblem {
  line?: number;
  message: string;
  field: string;
}

export type DeviceCsvRead =
  | { ok: true; rows: ImportRow[]; rejected: ImportRejection[] }
  | { ok: false; problem: DeviceCsvHeaderProblem };

/**
 * Reads an import: the header names the columns (any order); a row with the
 * wrong number of fields is rejected with its line, every other row becomes an
 * ImportRow for the registry's checks (importRowProblem, screenImportRows).
 */
export function readDeviceCsv(text: string): DeviceCsvRead {
  const records = parseCsv(text);
  const header = records.shift();
  if (!header) return { ok: false, problem: { message: 'a header line is required', field: 'body' } };
  const at = header.line;
  const columns = header.fields.map((f) => f.trim());
  const unknown = columns.filter((c) => !DEVICE_CSV_IMPORT_COLUMNS.includes(c));
  const fail = (message: string, field: string): DeviceCsvRead => ({
    ok: false,
    problem: { line: at, message, field },
  });
  if (unknown[0] !== undefined)
    return fail(`unknown column ${unknown.map((c) => JSON.stringify(c)).join(', ')}`, unknown[0]);
  for (const need of DEVICE_CSV_REQUIRED)
    if (!columns.includes(need)) return fail(`the header must name ${need}`, need);
  if (new Set(columns).size !== columns.length) return fail('a column is named twice', 'body');
  if (columns.includes('profile') && columns.includes('serviceProfile'))
    return fail('profile and serviceProfile are the same column', 'profile');

  const rows: ImportRow[] = [];
  const rejected: ImportRejection[] = [];
  for (const record of records) {
    if (record.fields.length !== columns.length) {
      rejected.push({
        line: record.line,
        code: 'registry.invalid_field',
        reason: `expected ${columns.length} fields, found ${record.fields.length}`,
      });
      continue;
    }
    const get = (name: string): string | undefined => {
      const v = record.fields[columns.indexOf(name)]?.trim();
      return v === '' ? undefined : v;
    };
    const row: ImportRow = { line: record.line, imei: get('imei') ?? '', operator: get('operator') ?? '' };
    const imsi = get('imsi');
    const profile = get('serviceProfile') ?? get('profile');
    const operatorProfile = get('operatorProfile');
    const model = get('model');
    const status = get('status');
    const secret = get('secret');
    if (imsi !== undefined) row.imsi = imsi;
    if (profile !== undefined) row.profile = profile;
    if (operatorProfile !== undefined) row.operatorProfile = operatorProfile;
    if (model !== undefined) row.model = model;
    if (status !== undefined) row.status = status as ImportRow['status'];
    if (secret !== undefined) row.secret = secret;
    rows.push(row);
  }
  return { ok: true, rows, rejected };
}

export interface ScreenOptions {
  /** Is the IMEI in the registry already? */
  exists(imei: string): boolean;
  /** A further check of a well-formed row (the admin API's references); runs before the duplicate checks. */
  refProblem?(row: ImportRow): ImportRejection | undefined;
  /** How the rejection of a repeated IMEI names the input ("file", "import"). */
  source: string;
  /** Called with the number of rows screened so far, every 1,000 rows. */
  onProgress?(screened: number): void;
}

/**
 * Checks every row before anything is written, so that a dry run shows every
 * rejection: the row itself (`rowProblem`: the registry's importRowProblem,
 * passed in so that this file stays free of lmdb for the UI bundle), then
 * `refProblem`, then an IMEI seen earlier in the input, then one the registry
 * has. The registry checks duplicates again inside its write transaction.
 */
export function screenImportRows(
  rows: readonly ImportRow[],
  rowProblem: (row: ImportRow) => ImportRejection | undefined,
  o: ScreenOptions,
): { good: ImportRow[]; rejected: ImportRejection[] } {
  const good: ImportRow[] = [];
  const rejected: ImportRejection[] = [];
  const firstLine = new Map<string, number | undefined>();
  let screened = 0;
  for (const row of rows) {
    if (++screened % 1000 === 0) o.onProgress?.(screened);
    const problem = rowProblem(row) ?? o.refProblem?.(row);
    if (problem) {
      rejected.push(problem);
      continue;
    }
    const at = { line: row.line, imei: row.imei, code: 'registry.duplicate', field: 'imei' } as const;
    if (firstLine.has(row.imei)) {
      const reason = `IMEI ${row.imei} appears twice in the ${o.source} (first on line ${firstLine.get(row.imei)})`;
      rejected.push({ ...at, reason });
      continue;
    }
    firstLine.set(row.imei, row.line);
    if (o.exists(row.imei)) {
      rejected.push({ ...at, reason: `IMEI ${row.imei} is already in the registry` });
      continue;
    }
    good.push(row);
  }
  return { good, rejected };
}

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
 * at the line an operator sees in an editor. The parser takes its input in
 * chunks (CsvParser), so that an import of any size is read with a bounded
 * amount of memory: a quote or a CRLF split between two chunks is carried
 * over, and one record may not exceed CSV_MAX_RECORD_CHARS (an unclosed quote
 * would otherwise swallow the rest of the file into one field).
 *
 * Written cells are neutralised against spreadsheet formula injection
 * (OWASP "CSV injection"): a text cell that begins with = + - @ tab or CR gets
 * a leading '. Reading strips nothing: a cell that begins with that ' and one
 * of those characters is refused with a reason that says so.
 *
 * No node: imports: the admin UI bundles this file for its template.
 */
import { ImeiSet } from './imei-set.ts';
import type { Device } from './records.ts';
import type { ImportRejection, ImportRow } from './import-rows.ts';

export interface CsvRecord {
  line: number;
  fields: string[];
}

/** The longest record the parser accepts, in characters: a device row is a few hundred. */
export const CSV_MAX_RECORD_CHARS = 64 * 1024;

/** A record longer than the parser accepts; `line` is where it starts. */
export class CsvRecordTooLong extends Error {
  constructor(
    readonly line: number,
    readonly limit: number,
  ) {
    super(`the record on line ${line} is longer than ${limit} characters (a quote left open?)`);
  }
}

/**
 * RFC 4180 records from text given in any number of chunks: push() returns
 * the records each chunk completes, end() the last one. A UTF-8 byte order
 * mark at the very start is skipped (spreadsheet programs write one).
 */
export class CsvParser {
  private fields: string[] = [];
  private field = '';
  private quoted = false;
  /** Quoted, and the chunk ended on a quote: the next character says whether it was "" or the end. */
  private quoteAtEnd = false;
  /** The chunk ended on a CR: a LF starting the next one belongs to it. */
  private crAtEnd = false;
  private fieldStarted = false;
  private line = 1;
  private start = 1;
  private chars = 0;
  private first = true;

  constructor(private readonly maxRecordChars = CSV_MAX_RECORD_CHARS) {}

  push(text: string): CsvRecord[] {
    const out: CsvRecord[] = [];
    let i = 0;
    const n = text.length;
    if (this.first && n > 0) {
      this.first = false;
      if (text.charCodeAt(0) === 0xfeff) i = 1;
    }
    if (this.crAtEnd && i < n) {
      this.crAtEnd = false;
      if (text.charCodeAt(i) === LF) i++;
    }
    if (this.quoteAtEnd && i < n) {
      this.quoteAtEnd = false;
      if (text.charCodeAt(i) === QUOTE) {
        this.append('"');
        i++;
      } else this.quoted = false;
    }
    while (i < n) {
      if (this.quoted) {
        const q = text.indexOf('"', i);
        const stop = q < 0 ? n : q;
        const part = text.slice(i, stop);
        this.append(part);
        for (let j = part.indexOf('\n'); j >= 0; j = part.indexOf('\n', j + 1)) this.line++;
        if (q < 0) break;
        i = q + 1;
        if (i === n) {
          this.quoteAtEnd = true;
          break;
        }
        if (text.charCodeAt(i) === QUOTE) {
          this.append('"');
          i++;
        } else this.quoted = false;
        continue;
      }
      const c = text.charCodeAt(i);
      if (c === QUOTE && this.field === '') {
        this.quoted = true;
        this.fieldStarted = true;
        i++;
      } else if (c === COMMA) {
        this.fields.push(this.field);
        this.field = '';
        this.fieldStarted = true;
        i++;
      } else if (c === LF || c === CR) {
        i++;
        if (c === CR) {
          if (i === n) this.crAtEnd = true;
          else if (text.charCodeAt(i) === LF) i++;
        }
        this.endRecord(out);
        this.line++;
        this.start = this.line;
      } else {
        let j = i + 1;
        while (j < n) {
          const d = text.charCodeAt(j);
          if (d === COMMA || d === LF || d === CR) break;
          j++;
        }
        this.append(text.slice(i, j));
        this.fieldStarted = true;
        i = j;
      }
    }
    return out;
  }

  /** The record the input ends in, if it has no line end. */
  end(): CsvRecord[] {
    const out: CsvRecord[] = [];
    this.quoteAtEnd = false;
    this.quoted = false;
    if (this.field !== '' || this.fields.length > 0 || this.fieldStarted) this.endRecord(out);
    return out;
  }

  private append(part: string): void {
    this.chars += part.length;
    if (this.chars > this.maxRecordChars) throw new CsvRecordTooLong(this.start, this.maxRecordChars);
    this.field += part;
  }

  private endRecord(out: CsvRecord[]): void {
    this.fields.push(this.field);
    // A blank line is no record.
    if (!(this.fields.length === 1 && this.fields[0] === '' && !this.fieldStarted))
      out.push({ line: this.start, fields: this.fields });
    this.fields = [];
    this.field = '';
    this.fieldStarted = false;
    this.chars = 0;
  }
}

const QUOTE = 0x22;
const COMMA = 0x2c;
const LF = 0x0a;
const CR = 0x0d;

export function parseCsv(text: string): CsvRecord[] {
  const parser = new CsvParser(Number.POSITIVE_INFINITY);
  return [...parser.push(text), ...parser.end()];
}

/** What a spreadsheet would run as a formula, or as a field separator of its own: OWASP's list. */
const FORMULA_START = /^[=+\-@\t\r]/;

/**
 * One cell: quoted when it holds a comma, quote or line end; a text that a
 * spreadsheet would take for a formula gets a leading ' (numbers are numbers).
 */
export function csvField(value: string | number | undefined): string {
  if (value === undefined) return '';
  if (typeof value === 'number') return String(value);
  return quoteCsv(FORMULA_START.test(value) ? `'${value}` : value);
}

function quoteCsv(s: string): string {
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function csvLine(values: Array<string | number | undefined>): string {
  return values.map(csvField).join(',') + '\n';
}

/**
 * A line of cells written exactly as given, for files that are read by
 * provisioning tools and must stay byte-exact: the imei,secret files of an
 * import. Device secrets are base64url, where '-' is one of the 64 letters;
 * with no parenthesis or separator in that alphabet, a cell of it cannot
 * call anything even in a spreadsheet.
 */
export function csvLineVerbatim(values: Array<string | number | undefined>): string {
  return values.map((v) => (v === undefined ? '' : quoteCsv(String(v)))).join(',') + '\n';
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

/** Thrown by readDeviceCsvStream when the file cannot be imported at all. */
export class DeviceCsvError extends Error {
  constructor(readonly problem: DeviceCsvHeaderProblem) {
    super(problem.line === undefined ? problem.message : `line ${problem.line}: ${problem.message}`);
  }
}

export type DeviceCsvRead =
  | { ok: true; rows: ImportRow[]; rejected: ImportRejection[] }
  | { ok: false; problem: DeviceCsvHeaderProblem };

/** A row read, or refused before any check of its values (wrong field count, the export's ' guard). */
export type DeviceCsvItem = { row: ImportRow } | { rejected: ImportRejection };

/** The ' that csvField puts before a formula character, still on a cell read back. */
const FORMULA_GUARD = /^'[=+\-@\t\r]/;

/**
 * The device columns of one file: the header names them (any order); then
 * each record becomes an ImportRow for the registry's checks
 * (importRowProblem, ImportScreen), or a rejection with its line.
 */
export class DeviceCsvColumns {
  /** Where each field of an ImportRow is, -1 when the file has no such column. */
  private readonly at: Record<
    'imei' | 'imsi' | 'operator' | 'profile' | 'operatorProfile' | 'model' | 'status' | 'secret',
    number
  >;

  private constructor(private readonly columns: string[]) {
    const profile = columns.indexOf('serviceProfile');
    this.at = {
      imei: columns.indexOf('imei'),
      imsi: columns.indexOf('imsi'),
      operator: columns.indexOf('operator'),
      profile: profile >= 0 ? profile : columns.indexOf('profile'),
      operatorProfile: columns.indexOf('operatorProfile'),
      model: columns.indexOf('model'),
      status: columns.indexOf('status'),
      secret: columns.indexOf('secret'),
    };
  }

  /** Reads the header record, or says why the file cannot be imported. */
  static fromHeader(header: CsvRecord | undefined): DeviceCsvColumns | DeviceCsvHeaderProblem {
    if (!header) return { message: 'a header line is required', field: 'body' };
    const at = header.line;
    const columns = header.fields.map((f) => f.trim());
    const unknown = columns.filter((c) => !DEVICE_CSV_IMPORT_COLUMNS.includes(c));
    if (unknown[0] !== undefined)
      return {
        line: at,
        message: `unknown column ${unknown.map((c) => JSON.stringify(c)).join(', ')}`,
        field: unknown[0],
      };
    for (const need of DEVICE_CSV_REQUIRED)
      if (!columns.includes(need)) return { line: at, message: `the header must name ${need}`, field: need };
    if (new Set(columns).size !== columns.length)
      return { line: at, message: 'a column is named twice', field: 'body' };
    if (columns.includes('profile') && columns.includes('serviceProfile'))
      return { line: at, message: 'profile and serviceProfile are the same column', field: 'profile' };
    return new DeviceCsvColumns(columns);
  }

  read(record: CsvRecord): DeviceCsvItem {
    const { columns } = this;
    if (record.fields.length !== columns.length)
      return {
        rejected: {
          line: record.line,
          code: 'registry.invalid_field',
          reason: `expected ${columns.length} fields, found ${record.fields.length}`,
        },
      };
    const guarded = record.fields.findIndex((f) => FORMULA_GUARD.test(f.trim()));
    if (guarded >= 0) {
      const column = columns[guarded] ?? 'body';
      const value = record.fields[guarded]?.trim() ?? '';
      const imei = record.fields[columns.indexOf('imei')]?.trim();
      return {
        rejected: {
          line: record.line,
          ...(imei ? { imei } : {}),
          code: 'registry.invalid_field',
          reason:
            `${column} ${JSON.stringify(value)} begins with the ' that an export puts before = + - @ ` +
            '(so that a spreadsheet does not run it as a formula); nothing is stripped on import: remove it',
          field: column,
        },
      };
    }
    const { at } = this;
    const { fields } = record;
    const row: ImportRow = {
      line: record.line,
      imei: cell(fields, at.imei) ?? '',
      operator: cell(fields, at.operator) ?? '',
    };
    const imsi = cell(fields, at.imsi);
    const profile = cell(fields, at.profile);
    const operatorProfile = cell(fields, at.operatorProfile);
    const model = cell(fields, at.model);
    const status = cell(fields, at.status);
    const secret = cell(fields, at.secret);
    if (imsi !== undefined) row.imsi = imsi;
    if (profile !== undefined) row.profile = profile;
    if (operatorProfile !== undefined) row.operatorProfile = operatorProfile;
    if (model !== undefined) row.model = model;
    if (status !== undefined) row.status = status as ImportRow['status'];
    if (secret !== undefined) row.secret = secret;
    return { row };
  }
}

/** A cell's value, spaces around it trimmed; undefined when empty or absent. */
function cell(fields: string[], i: number): string | undefined {
  const v = i < 0 ? undefined : fields[i]?.trim();
  return v === '' ? undefined : v;
}

/** Reads a whole import held in memory (small files; imports stream with readDeviceCsvStream). */
export function readDeviceCsv(text: string): DeviceCsvRead {
  const records = parseCsv(text);
  const columns = DeviceCsvColumns.fromHeader(records.shift());
  if (!(columns instanceof DeviceCsvColumns)) return { ok: false, problem: columns };
  const rows: ImportRow[] = [];
  const rejected: ImportRejection[] = [];
  for (const record of records) {
    const item = columns.read(record);
    if ('row' in item) rows.push(item.row);
    else rejected.push(item.rejected);
  }
  return { ok: true, rows, rejected };
}

/**
 * Reads an import from a stream of chunks (bytes as UTF-8, or text), one
 * batch of rows and rejections per chunk, in file order, holding no more than
 * a chunk and one record. Throws DeviceCsvError when the file cannot be
 * imported at all (no header, a bad header, a record over maxRecordChars).
 */
export async function* readDeviceCsvStream(
  chunks: AsyncIterable<Uint8Array | string>,
  maxRecordChars = CSV_MAX_RECORD_CHARS,
): AsyncGenerator<DeviceCsvItem[]> {
  const parser = new CsvParser(maxRecordChars);
  const decoder = new TextDecoder('utf-8');
  let columns: DeviceCsvColumns | undefined;
  const items = (records: CsvRecord[]): DeviceCsvItem[] => {
    const out: DeviceCsvItem[] = [];
    for (const record of records) {
      if (!columns) {
        const read = DeviceCsvColumns.fromHeader(record);
        if (!(read instanceof DeviceCsvColumns)) throw new DeviceCsvError(read);
        columns = read;
      } else out.push(columns.read(record));
    }
    return out;
  };
  const parse = (text: string): CsvRecord[] => {
    try {
      return parser.push(text);
    } catch (err) {
      if (err instanceof CsvRecordTooLong)
        throw new DeviceCsvError({
          line: err.line,
          message: err.message.replace(/^the record on line \d+ /, 'the record '),
          field: 'body',
        });
      throw err;
    }
  };
  for await (const chunk of chunks) {
    const text = typeof chunk === 'string' ? chunk : decoder.decode(chunk, { stream: true });
    const batch = items(parse(text));
    if (batch.length > 0) yield batch;
  }
  const last = items([...parse(decoder.decode()), ...parser.end()]);
  if (!columns) throw new DeviceCsvError({ message: 'a header line is required', field: 'body' });
  if (last.length > 0) yield last;
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
 * Checks rows one at a time, before anything is written, so that a dry run
 * shows every rejection: the row itself (`rowProblem`: the registry's
 * importRowProblem, passed in so that this file stays free of lmdb for the UI
 * bundle), then `refProblem`, then an IMEI seen earlier in the input, then one
 * the registry has. What it keeps of the rows seen is an ImeiSet (12 bytes a
 * row), so a screen of any length stays small. The registry checks
 * duplicates again inside its write transaction.
 */
export class ImportScreen {
  private screened = 0;

  /** `seen`: the IMEI set to fill (cleared first), so that a second pass reuses the first one's room. */
  constructor(
    private readonly rowProblem: (row: ImportRow) => ImportRejection | undefined,
    private readonly o: ScreenOptions,
    readonly seen = new ImeiSet(),
  ) {
    seen.clear();
  }

  /** The row's rejection, or undefined when it may be written. */
  check(row: ImportRow): ImportRejection | undefined {
    const { o } = this;
    if (++this.screened % 1000 === 0) o.onProgress?.(this.screened);
    const problem = this.rowProblem(row) ?? o.refProblem?.(row);
    if (problem) return problem;
    const first = this.seen.add(row.imei, row.line);
    const duplicate = (reason: string): ImportRejection => ({
      line: row.line,
      imei: row.imei,
      code: 'registry.duplicate',
      field: 'imei',
      reason,
    });
    if (first !== undefined)
      return duplicate(
        `IMEI ${row.imei} appears twice in the ${o.source} (first on line ${first ?? undefined})`,
      );
    if (o.exists(row.imei)) return duplicate(`IMEI ${row.imei} is already in the registry`);
    return undefined;
  }
}

/** ImportScreen over rows held in memory. */
export function screenImportRows(
  rows: readonly ImportRow[],
  rowProblem: (row: ImportRow) => ImportRejection | undefined,
  o: ScreenOptions,
): { good: ImportRow[]; rejected: ImportRejection[] } {
  const good: ImportRow[] = [];
  const rejected: ImportRejection[] = [];
  const screen = new ImportScreen(rowProblem, o);
  for (const row of rows) {
    const problem = screen.check(row);
    if (problem) rejected.push(problem);
    else good.push(row);
  }
  return { good, rejected };
}

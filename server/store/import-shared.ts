/**
 * Import rows written to a registry on the shared state (a cluster: JetStream
 * KV), one key at a time: each new device is a create-if-absent of its IMEI
 * (RegistryTable.change on an absent key is a create, refused by the bucket
 * if another writer got there first), IN_FLIGHT keys at a time. Nothing spans
 * keys there, so unlike one lmdb transaction a call that fails midway has
 * written the rows it reports in `created` and no others; an IMEI that exists
 * already is never overwritten, so writing the same rows again changes
 * nothing and reports them as duplicates.
 */
import type { ImportMode, ImportRejection, PreparedImportRow } from './import-rows.ts';
import type { DeviceRecordV1 } from './records.ts';
import type { RegistryTable } from './registry-table.ts';

/** Keys in flight at once (5,000 creates take ~1.7 s with 100 on a 3-server loopback cluster). */
export const IMPORT_IN_FLIGHT = 100;

export function duplicateRow(p: { line?: number; record: { imei: string } }): ImportRejection {
  const { imei } = p.record;
  return {
    line: p.line,
    imei,
    code: 'registry.duplicate',
    reason: `IMEI ${imei} is already in the registry`,
    field: 'imei',
  };
}

export interface SharedCreateOutcome {
  /** IMEIs this call created. */
  created: Set<string>;
  /** Rows whose IMEI was in the registry (before, or written by another node meanwhile). */
  conflicts: ImportRejection[];
  /** The first write that failed (the shared state unreachable): the rows after it were not tried. */
  error?: unknown;
}

/**
 * Creates the rows' devices. In all-or-nothing mode a row whose IMEI is in
 * the table's copy already stops the call before anything is written; one
 * another node creates meanwhile is still a conflict after the others were.
 */
export async function createSharedRows(
  devices: RegistryTable<DeviceRecordV1>,
  rows: PreparedImportRow[],
  mode: ImportMode,
): Promise<SharedCreateOutcome> {
  const conflicts: ImportRejection[] = [];
  const queue: PreparedImportRow[] = [];
  for (const p of rows) {
    if (devices.has(p.record.imei)) conflicts.push(duplicateRow(p));
    else queue.push(p);
  }
  const created = new Set<string>();
  if (mode === 'all-or-nothing' && conflicts.length > 0) return { created, conflicts };
  let next = 0;
  let error: unknown;
  let failed = false;
  const worker = async (): Promise<void> => {
    while (!failed && next < queue.length) {
      const p = queue[next++] as PreparedImportRow;
      try {
        const made = await devices.change(p.record.imei, (current) =>
          current === undefined ? { put: p.record, result: true } : { result: false },
        );
        if (made) created.add(p.record.imei);
        else conflicts.push(duplicateRow(p));
      } catch (err) {
        if (!failed) error = err;
        failed = true;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(IMPORT_IN_FLIGHT, queue.length) }, worker));
  conflicts.sort((a, b) => (a.line ?? 0) - (b.line ?? 0));
  return failed ? { created, conflicts, error } : { created, conflicts };
}

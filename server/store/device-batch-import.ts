/**
 * Writes many device rows held in memory in ONE lmdb transaction: a crash
 * (kill -9) at any point leaves either every row of the call or none of it.
 * Files (the CLI, the API) import through device-import.ts instead, in
 * batches as a job, since one transaction holds every dirty page in memory.
 *
 * Rows are checked on their own first, then against the registry and each
 * other inside the transaction (another process may have added one since the
 * caller validated). 'all-or-nothing' writes nothing when any row is
 * rejected; 'valid-only' writes the rows that pass. The caller announces the
 * devices written (ImportResult.secrets).
 *
 * On a registry on the shared state (a cluster) importSharedRows writes the
 * rows one key at a time instead (import-shared.ts): what it answers is the
 * same, but a call that fails midway (the shared state unreachable) leaves
 * the rows written so far, and in 'all-or-nothing' mode an IMEI another node
 * adds while the rows are written is rejected after the others were written.
 */
import {
  type ImportMode,
  type ImportRejection,
  type ImportResult,
  type ImportRow,
  prepareImportRow,
  screenImportRows,
  sortRejections,
} from './import-rows.ts';
import { createSharedRows, duplicateRow } from './import-shared.ts';
import type { DeviceRecordV1 } from './records.ts';
import type { RegistryTable } from './registry-table.ts';
import type { LmdbRegistryDatabases } from './registry-tables.ts';

export type BatchImportHost = Pick<LmdbRegistryDatabases, 'devices' | 'imsis'> & { now: () => number };

export async function importDeviceRows(
  h: BatchImportHost,
  rows: ImportRow[],
  options: { mode: ImportMode; onProgress?: (done: number, total: number) => void },
): Promise<ImportResult> {
  const { mode } = options;
  const { devices, imsis } = h;
  const { rejected, candidates } = screenImportRows(rows);
  if (mode === 'all-or-nothing' && rejected.length > 0) {
    return { mode, total: rows.length, written: 0, rejected: sortRejections(rejected), secrets: [] };
  }
  // Secrets and hashes are computed outside the transaction to keep the write lock short.
  const now = h.now();
  const prepared = candidates.map((row) => ({ row, ...prepareImportRow(row, now) }));
  const secrets: Array<{ imei: string; secret: string }> = [];
  const step = Math.max(1, Math.floor(prepared.length / 100));
  await devices.transaction(() => {
    const existing: ImportRejection[] = [];
    for (const p of prepared) {
      if (devices.doesExist(p.record.imei)) {
        existing.push({
          line: p.row.line,
          imei: p.record.imei,
          code: 'registry.duplicate',
          reason: `IMEI ${p.record.imei} is already in the registry`,
        });
      }
    }
    rejected.push(...existing);
    // Nothing was written yet, so returning here leaves the transaction empty.
    if (mode === 'all-or-nothing' && existing.length > 0) return;
    const dup = new Set(existing.map((r) => r.imei));
    let done = 0;
    for (const p of prepared) {
      if (!dup.has(p.record.imei)) {
        devices.put(p.record.imei, p.record);
        if (p.record.imsi) imsis.put(`${p.record.imsi}:${p.record.imei}`, true);
        secrets.push({ imei: p.record.imei, secret: p.secret });
      }
      if (++done % step === 0) options.onProgress?.(done, prepared.length);
    }
  });
  options.onProgress?.(prepared.length, prepared.length);
  return { mode, total: rows.length, written: secrets.length, rejected: sortRejections(rejected), secrets };
}

/** Chunk between progress reports of importSharedRows. */
const SHARED_CHUNK = 1000;

export async function importSharedRows(
  h: { devices: RegistryTable<DeviceRecordV1>; now: () => number },
  rows: ImportRow[],
  options: { mode: ImportMode; onProgress?: (done: number, total: number) => void },
): Promise<ImportResult> {
  const { mode } = options;
  const { rejected, candidates } = screenImportRows(rows);
  const existing = candidates.filter((row) => h.devices.has(row.imei));
  if (mode === 'all-or-nothing' && (rejected.length > 0 || existing.length > 0)) {
    const dup = existing.map((row) => duplicateRow({ line: row.line, record: row }));
    const all = sortRejections([...rejected, ...dup]);
    return { mode, total: rows.length, written: 0, rejected: all, secrets: [] };
  }
  const now = h.now();
  const secrets: Array<{ imei: string; secret: string }> = [];
  for (let at = 0; at < candidates.length; at += SHARED_CHUNK) {
    const prepared = candidates.slice(at, at + SHARED_CHUNK).map((row) => prepareImportRow(row, now));
    const r = await createSharedRows(h.devices, prepared, 'valid-only');
    rejected.push(...r.conflicts);
    for (const p of prepared)
      if (r.created.has(p.record.imei)) secrets.push({ imei: p.record.imei, secret: p.secret });
    if (r.error !== undefined) throw r.error;
    options.onProgress?.(Math.min(at + SHARED_CHUNK, candidates.length), candidates.length);
  }
  return { mode, total: rows.length, written: secrets.length, rejected: sortRejections(rejected), secrets };
}

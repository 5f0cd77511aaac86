import { closeSync, openSync, renameSync, writeSync } from 'node:fs';
import type { Device } from '../../store/records.ts';

/** How `mmgw device …` shows handsets to a person, and how it writes files. */

export function iso(ms: number | undefined): string {
  return ms === undefined ? '' : new Date(ms).toISOString();
}

export function describeDevice(d: Device): string {
  const rows: Array<[string, string | undefined]> = [
    ['imei', d.imei],
    ['imsi', d.imsi],
    ['operator', d.operator],
    ['profile', d.profile],
    ['status', d.status],
    ['created', iso(d.createdAt)],
    ['last seen', d.lastSeenAt === undefined ? 'never' : iso(d.lastSeenAt)],
  ];
  return rows
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k.padEnd(10)} ${v}\n`)
    .join('');
}

export function deviceTable(devices: Device[]): string {
  const head = ['IMEI', 'IMSI', 'OPERATOR', 'PROFILE', 'STATUS', 'CREATED', 'LAST SEEN'];
  const rows = devices.map((d) => [
    d.imei,
    d.imsi ?? '-',
    d.operator,
    d.profile ?? '-',
    d.status,
    iso(d.createdAt).slice(0, 19),
    d.lastSeenAt === undefined ? 'never' : iso(d.lastSeenAt).slice(0, 19),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  return [head, ...rows]
    .map(
      (r) =>
        r
          .map((c, i) => c.padEnd(widths[i] ?? 0))
          .join('  ')
          .trimEnd() + '\n',
    )
    .join('');
}

/** Writes a file through a temporary name and a rename, so that a reader never sees half of it. */
export function writeAtomically(path: string, chunks: Iterable<string>, mode = 0o644): void {
  const tmp = `${path}.${process.pid}.tmp`;
  const fd = openSync(tmp, 'w', mode);
  try {
    for (const chunk of chunks) writeSync(fd, chunk);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

export function secretNotice(secret: string): string {
  return `secret    ${secret}\n(shown only this once: give it to the handset now; \`mmgw device reset-secret\` makes a new one)\n`;
}

/** "1 device", "2 devices". */
export function devices(n: number): string {
  return `${n} device${n === 1 ? '' : 's'}`;
}

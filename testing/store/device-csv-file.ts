/**
 * Writes an import file of many devices for the import tests: valid rows with
 * distinct IMEIs (and IMSIs), either short (imei,operator) or wide (every
 * column filled to its 64-character limit and a secret, ~340 bytes a row).
 */
import { createWriteStream } from 'node:fs';
import { imeiWithCheckDigit } from '../../server/store/imei.ts';

/** The n-th IMEI of a file written with this prefix (2 digits). */
export function fileImei(n: number, prefix = '35'): string {
  return imeiWithCheckDigit(prefix + String(n).padStart(12, '0'));
}

export async function writeDeviceCsvFile(
  path: string,
  size: { rows: number } | { bytes: number },
  o: { wide?: boolean; prefix?: string } = {},
): Promise<{ rows: number; bytes: number }> {
  const out = createWriteStream(path);
  const fill = (c: string) => c.repeat(64);
  let bytes = 0;
  let rows = 0;
  const more = () => ('rows' in size ? rows < size.rows : bytes < size.bytes);
  const header = o.wide
    ? 'imei,imsi,operator,operatorProfile,serviceProfile,model,status,secret\n'
    : 'imei,operator\n';
  out.write(header);
  bytes += header.length;
  while (more()) {
    let chunk = '';
    for (let k = 0; k < 1000 && more(); k++, rows++) {
      const imei = fileImei(rows, o.prefix);
      const line = o.wide
        ? `${imei},31015${String(rows).padStart(10, '0')},${fill('o')},${fill('p')},${fill('s')},${fill('m')},enabled,${`S${rows}`.padEnd(43, 'x')}\n`
        : `${imei},op\n`;
      chunk += line;
      bytes += line.length;
    }
    if (!out.write(chunk)) await new Promise<void>((r) => out.once('drain', () => r()));
  }
  out.end();
  await new Promise<void>((r) => out.once('finish', () => r()));
  return { rows, bytes };
}

/**
 * Bulk provisioning for the benchmark: N devices with real secrets, written
 * through the Registry (its import path, so secrets are hashed exactly as in
 * production) into a throw-away data directory.
 */
import { luhnCheckDigit } from '../../../server/store/imei.ts';
import { Registry } from '../../../server/store/registry.ts';

/** The n-th benchmark IMEI: TAC 35693803, a 6-digit serial, the Luhn digit. */
export function benchImei(n: number): string {
  const body = `35693803${String(n).padStart(6, '0')}`;
  return body + luhnCheckDigit(body);
}

/** Provisions `count` devices and returns [imei, secret] for each, in IMEI order. */
export async function provisionDevices(dataDir: string, count: number): Promise<[string, string][]> {
  if (count > 1_000_000) throw new Error('at most 1,000,000 benchmark devices (6-digit serials)');
  const registry = await Registry.open(dataDir);
  try {
    const out: [string, string][] = [];
    const batch = 50_000;
    for (let from = 0; from < count; from += batch) {
      const rows = [];
      for (let n = from; n < Math.min(count, from + batch); n++)
        rows.push({ imei: benchImei(n), operator: 'bench' });
      const result = await registry.importDevices(rows, { mode: 'all-or-nothing' });
      if (result.written !== rows.length) {
        throw new Error(
          `provisioning wrote ${result.written} of ${rows.length}: ${JSON.stringify(result.rejected[0])}`,
        );
      }
      for (const s of result.secrets) out.push([s.imei, s.secret]);
    }
    return out;
  } finally {
    await registry.close();
  }
}

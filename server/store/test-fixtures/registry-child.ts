/**
 * A second process for the registry's multi-process and crash tests.
 *   add DATA PREFIX8 COUNT         adds COUNT devices one by one, prints "added N"
 *   import DATA BATCHES SIZE       imports BATCHES batches (operator batch-<i>), prints "batch <i>" after each commit
 *   bulk DATA COUNT                imports COUNT devices in one call (operator bulk), prints "importing", then "progress N" from inside the transaction
 *   auth DATA IMEI SECRET          prints the DeviceInfo as JSON or the error code
 */
import { imeiWithCheckDigit } from '../imei.ts';
import { Registry } from '../registry.ts';

const [cmd, dataDir, a, b] = process.argv.slice(2);
const registry = await Registry.open(dataDir);

function imei(n: number, prefix: string): string {
  return imeiWithCheckDigit(prefix + String(n).padStart(14 - prefix.length, '0'));
}

if (cmd === 'add') {
  const count = Number(b);
  for (let i = 0; i < count; i++) await registry.addDevice({ imei: imei(i, a), operator: 'child' });
  console.log(`added ${count}`);
} else if (cmd === 'import') {
  const batches = Number(a);
  const size = Number(b);
  for (let i = 0; i < batches; i++) {
    const rows = Array.from({ length: size }, (_, j) => ({
      imei: imei(i * size + j, '35'),
      operator: `batch-${i}`,
    }));
    const result = await registry.importDevices(rows, { mode: 'all-or-nothing' });
    if (result.written !== size) throw new Error(`batch ${i}: wrote ${result.written}`);
    console.log(`batch ${i}`);
  }
} else if (cmd === 'bulk') {
  const rows = Array.from({ length: Number(a) }, (_, j) => ({ imei: imei(j, '86'), operator: 'bulk' }));
  console.log('importing');
  // Pipes are synchronous on Linux: the parent sees each line while the transaction is still open.
  const onProgress = (done: number) => process.stdout.write(`progress ${done}\n`);
  const result = await registry.importDevices(rows, { mode: 'valid-only', onProgress });
  console.log(`imported ${result.written}`);
} else if (cmd === 'auth') {
  try {
    console.log(JSON.stringify(registry.authenticate(a, b)));
  } catch (err) {
    console.log((err as { code?: string }).code);
  }
}
await registry.close();

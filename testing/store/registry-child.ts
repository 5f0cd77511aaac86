/**
 * A second process for the registry's multi-process and crash tests.
 *   add DATA PREFIX8 COUNT         adds COUNT devices one by one, prints "added N"
 *   import DATA BATCHES SIZE       imports BATCHES batches (operator batch-<i>), prints "batch <i>" after each commit
 *   bulk DATA COUNT                imports COUNT devices in one call (operator bulk), prints "importing", then "progress N" from inside the transaction
 *   auth DATA IMEI SECRET          prints the DeviceInfo as JSON or the error code
 *   csv DATA FILE MODE JOBID       imports a CSV file as a job (importDeviceCsv, batches of 1,000),
 *                                  prints "job <id>", "written N" after each batch, then "finished <state>"
 *                                  and waits to be killed
 *   memory DATA FILE               a warm-up import, then FILE as a dry run and for real; prints the
 *                                  memory figures as one JSON line
 */
import {
  closeSync,
  createReadStream,
  openSync,
  readFileSync,
  readSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { importDeviceCsv } from '../../server/store/device-import.ts';
import { imeiWithCheckDigit } from '../../server/store/imei.ts';
import { importResultSealer } from '../../server/store/import-sealer.ts';
import { type ImportMode, Registry } from '../../server/store/registry.ts';

const [cmd, dataDir = '', a, b] = process.argv.slice(2);
const registry = await Registry.open(dataDir);

function imei(n: number, prefix: string): string {
  return imeiWithCheckDigit(prefix + String(n).padStart(14 - prefix.length, '0'));
}

if (cmd === 'add') {
  const count = Number(b);
  for (let i = 0; i < count; i++) await registry.addDevice({ imei: imei(i, a ?? ''), operator: 'child' });
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
} else if (cmd === 'csv') {
  const [file, mode, jobId] = [a ?? '', b as ImportMode, process.argv[6]];
  const outcome = await importDeviceCsv(
    registry,
    { first: createReadStream(file), again: () => createReadStream(file) },
    {
      mode,
      ...(jobId ? { jobId } : {}),
      actor: { actor: 'cli:crash-test', role: 'cli' },
      source: 'file',
      sealer: importResultSealer({ dataDir }),
      onJob: (id) => process.stdout.write(`job ${id}\n`),
      onProgress: (p) => {
        if (p.phase === 'writing') process.stdout.write(`written ${p.rows}\n`);
      },
    },
  );
  // The answer is lost with the process from here on: what is left is what the registry kept.
  process.stdout.write(`finished ${outcome.job?.state}\n`);
  await new Promise(() => setInterval(() => undefined, 1000));
} else if (cmd === 'memory') {
  await memory(a ?? '');
} else if (cmd === 'auth') {
  try {
    console.log(JSON.stringify(registry.authenticate(a ?? '', b ?? '')));
  } catch (err) {
    console.log((err as { code?: string }).code);
  }
}
await registry.close();

/**
 * Memory of a large import, read from /proc (kB → MB): RssAnon is what the
 * process allocated; RssFile is mostly the registry's lmdb map, pages of the
 * OS page cache that any reader of those devices maps too. Sampled every
 * 10 ms, and VmHWM (the kernel's peak RSS) at the end.
 *
 * "cold" growth is measured from the process right after it opened the
 * registry; "warm" from after a 5,000-row import (dry run and real) of the
 * same shape, as in a gateway that has run before: its heap spaces have grown
 * to working size and its code is compiled, so what remains is what the big
 * file itself costs.
 */
async function memory(file: string): Promise<void> {
  const status = () => {
    const text = readFileSync('/proc/self/status', 'utf8');
    const kb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(text)?.[1] ?? 0) / 1024;
    return { rss: kb('VmRSS'), anon: kb('RssAnon'), file: kb('RssFile'), hwm: kb('VmHWM') };
  };
  const sealer = importResultSealer({ dataDir });
  const run = async (path: string, dryRun: boolean) => {
    const start = status();
    let peak = start;
    const timer = setInterval(() => {
      const now = status();
      if (now.anon > peak.anon) peak = { ...now, rss: Math.max(now.rss, peak.rss) };
      else if (now.rss > peak.rss) peak = { ...peak, rss: now.rss };
    }, 10);
    const t0 = performance.now();
    const outcome = await importDeviceCsv(
      registry,
      { first: createReadStream(path), again: () => createReadStream(path) },
      {
        mode: 'all-or-nothing',
        dryRun,
        sizeHint: statSync(path).size,
        actor: { actor: 'cli:memory-test', role: 'cli' },
        source: 'file',
        sealer,
      },
    );
    const seconds = (performance.now() - t0) / 1000;
    clearInterval(timer);
    const end = status();
    const rows = dryRun ? outcome.total : outcome.written;
    return {
      rows,
      seconds: Math.round(seconds * 10) / 10,
      rowsPerSecond: Math.round(rows / seconds),
      anonGrowthMb: Math.round(Math.max(peak.anon, end.anon) - start.anon),
      rssGrowthMb: Math.round(Math.max(peak.rss, end.rss, end.hwm) - start.rss),
      fileGrowthMb: Math.round(end.file - start.file),
      start,
    };
  };
  const cold = status();
  const warmFile = join(dataDir, 'warm-up.csv');
  // The same shape as the big file's rows, IMEIs of another range (prefix 86).
  const head = Buffer.alloc(4096);
  const fd = openSync(file, 'r');
  readSync(fd, head, 0, head.length, 0);
  closeSync(fd);
  const lines = head.toString('utf8').split('\n');
  const header = lines[0] ?? '';
  const sample = lines[1] ?? '';
  const rows = Array.from({ length: 5000 }, (_, i) => {
    const imei = imeiWithCheckDigit(`86${String(i).padStart(12, '0')}`);
    return `${imei}${sample.slice(15).replace(/,31015\d{10},/, `,31099${String(i).padStart(10, '0')},`)}`;
  });
  writeFileSync(warmFile, `${header}\n${rows.join('\n')}\n`);
  await run(warmFile, true);
  await run(warmFile, false);
  const dry = await run(file, true);
  const real = await run(file, false);
  const coldAnon = (r: typeof dry) => Math.round(r.start.anon + r.anonGrowthMb - cold.anon);
  console.log(
    JSON.stringify({
      dryRun: { ...dry, coldAnonGrowthMb: coldAnon(dry), start: undefined },
      real: { ...real, coldAnonGrowthMb: coldAnon(real), start: undefined },
    }),
  );
}

/**
 * Admin benchmark (`npm run bench:admin`): the device registry at scale and
 * usage reports over a month of counters, all through the REST API of a real
 * gateway process (`mmgw start --role admin`).
 *
 *   1. import --devices devices (default 1,000,000) as CSV through
 *      POST /api/v1/devices/import?mode=valid-only, in chunks of --chunk rows;
 *   2. list/search latency over that registry (sequential requests, p50/p99);
 *   3. usage counters for --usage-devices devices (default 100,000) over
 *      --days days (default 30), generated straight into the records store
 *      (`<data>/records`, the same lmdb the gateway reads), --active-hours per
 *      device and day; then report queries through the API, p50/p99.
 *
 * Prints the figures as a markdown section (paste under "## Admin" in
 * test/bench/RESULTS.md) and writes them as JSON to test/output/bench-admin.json.
 * `--smoke`: small sizes, a self-check in well under a minute.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { RecordsStore } from '../../../admin/records-store.ts';
import type { ServiceName, UsageDelta } from '../../../server/records/types.ts';
import { imeiWithCheckDigit } from '../../../server/store/imei.ts';
import { ROOT, startGateway } from '../../harness/gateway.ts';

const { values: args } = parseArgs({
  options: {
    smoke: { type: 'boolean', default: false },
    devices: { type: 'string' },
    chunk: { type: 'string' },
    'usage-devices': { type: 'string' },
    days: { type: 'string' },
    'active-hours': { type: 'string' },
    queries: { type: 'string' },
  },
});
const smoke = Boolean(args.smoke);
const DEVICES = Number(args.devices ?? (smoke ? 20_000 : 1_000_000));
const CHUNK = Number(args.chunk ?? (smoke ? 5_000 : 100_000));
const USAGE_DEVICES = Number(args['usage-devices'] ?? (smoke ? 2_000 : 100_000));
const DAYS = Number(args.days ?? (smoke ? 3 : 30));
const ACTIVE_HOURS = Number(args['active-hours'] ?? 2);
const QUERIES = Number(args.queries ?? (smoke ? 50 : 300));
const OPERATORS = 10;
const ADMIN = { name: 'bench', password: 'bench-password-long' };
const HOUR = 3_600_000;
const DAY = 86_400_000;

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const random = rng(42);

const imeiOf = (i: number) => imeiWithCheckDigit(`35${String(i).padStart(12, '0')}`);

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN;
}

const fmt = (n: number, digits = 0) =>
  n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

async function main(): Promise<void> {
  const loadBefore = loadavg()[0]!;
  const dataDir = mkdtempSync(join(tmpdir(), 'mmgw-bench-admin-'));
  const gw = await startGateway({
    dataDir,
    args: ['--role', 'admin', '--log-level', 'warn'],
    env: { MMGW_ADMIN_NAME: ADMIN.name, MMGW_ADMIN_PASSWORD: ADMIN.password, MMGW_LOG_LEVEL: 'warn' },
    timeoutMs: 120_000,
  });
  const api = `${gw.adminUrl}/api/v1`;
  const results: Record<string, unknown> = {};
  try {
    const login = await fetch(`${api}/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(ADMIN),
    });
    const { token } = (await login.json()) as { token: string };
    const auth = { authorization: `Bearer ${token}` };
    const call = async (method: string, path: string, body?: string, type = 'application/json') => {
      const res = await fetch(`${api}${path}`, {
        method,
        headers: { ...auth, ...(body === undefined ? {} : { 'content-type': type }) },
        body,
      });
      const text = await res.text();
      if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${text.slice(0, 300)}`);
      return text;
    };
    for (let o = 0; o < OPERATORS; o++) {
      await call('POST', '/operators', JSON.stringify({ id: `op-${o}`, name: `Operator ${o}` }));
    }
    await call(
      'POST',
      '/service-profiles',
      JSON.stringify({
        id: 'basic',
        name: 'Basic',
        services: ['mail', 'im'],
        policies: { maxAttachmentBytes: 500_000, bodyTruncateBytes: 8192, imageQuality: 60 },
      }),
    );

    // ---- 1. import -----------------------------------------------------------
    console.error(`importing ${fmt(DEVICES)} devices in chunks of ${fmt(CHUNK)} …`);
    let written = 0;
    let csvBytes = 0;
    const importStart = performance.now();
    for (let start = 0; start < DEVICES; start += CHUNK) {
      const lines = ['imei,imsi,operator,serviceProfile'];
      for (let i = start; i < Math.min(DEVICES, start + CHUNK); i++) {
        lines.push(
          `${imeiOf(i)},26201${String(i).padStart(10, '0')},op-${i % OPERATORS},${i % 3 === 0 ? 'basic' : ''}`,
        );
      }
      const csv = lines.join('\n');
      csvBytes += csv.length;
      const out = JSON.parse(await call('POST', '/devices/import?mode=valid-only', csv, 'text/csv'));
      written += out.written;
      if (out.rejected.length > 0)
        throw new Error(`rejected rows: ${JSON.stringify(out.rejected.slice(0, 3))}`);
      console.error(`  ${fmt(written)} written, ${fmt((performance.now() - importStart) / 1000, 1)} s`);
    }
    const importSeconds = (performance.now() - importStart) / 1000;
    results.import = {
      devices: written,
      seconds: importSeconds,
      perSecond: written / importSeconds,
      chunk: CHUNK,
      csvMiB: csvBytes / 2 ** 20,
    };

    // ---- 2. list / search latency --------------------------------------------
    console.error(`list/search latency, ${QUERIES} queries per kind …`);
    const kinds: Array<[string, () => string]> = [
      ['first page, 50 devices (GET /devices?limit=50)', () => '/devices?limit=50'],
      [
        'page after a random IMEI, 50 devices',
        () => `/devices?limit=50&after=${imeiOf(Math.floor(random() * DEVICES))}`,
      ],
      [
        'IMEI prefix, 10 digits (~100 matches)',
        () => `/devices?limit=50&imei=${imeiOf(Math.floor(random() * DEVICES)).slice(0, 10)}`,
      ],
      [
        'one device by IMEI (GET /devices/{imei})',
        () => `/devices/${imeiOf(Math.floor(random() * DEVICES))}`,
      ],
      [
        'operator filter, 50 devices',
        () => `/devices?limit=50&operator=op-${Math.floor(random() * OPERATORS)}`,
      ],
      [
        'operator + status + service profile, 50 devices',
        () =>
          `/devices?limit=50&operator=op-${Math.floor(random() * OPERATORS)}&status=enabled&serviceProfile=basic`,
      ],
      [
        'IMSI prefix, 8 digits (IMSI index, ~100 matches)',
        () =>
          `/devices?limit=50&imsi=26201${String(Math.floor(random() * DEVICES))
            .padStart(10, '0')
            .slice(0, 8)}`,
      ],
    ];
    const latency: Record<string, { n: number; p50: number; p99: number; max: number }> = {};
    for (const [label, path] of kinds) {
      const n = QUERIES;
      const times: number[] = [];
      for (let i = 0; i < n; i++) {
        const t0 = performance.now();
        await call('GET', path());
        times.push(performance.now() - t0);
      }
      times.sort((a, b) => a - b);
      const stats = {
        n,
        p50: percentile(times, 50),
        p99: percentile(times, 99),
        max: times[times.length - 1]!,
      };
      latency[label] = stats;
      console.error(`  ${label}: p50 ${fmt(stats.p50, 1)} ms, p99 ${fmt(stats.p99, 1)} ms`);
    }
    results.latency = latency;

    // ---- 3. usage counters and reports ------------------------------------------
    const end = Math.floor(Date.now() / DAY) * DAY;
    const begin = end - DAYS * DAY;
    console.error(
      `generating ${DAYS} days of hourly counters for ${fmt(USAGE_DEVICES)} devices, ${ACTIVE_HOURS} active hours each a day …`,
    );
    const store = await RecordsStore.open({ dataDir, usageMaxAgeDays: DAYS + 30 });
    const services: ServiceName[] = ['session', 'mail', 'im'];
    let rows = 0;
    const genStart = performance.now();
    for (let day = 0; day < DAYS; day++) {
      const batch: UsageDelta[] = [];
      for (let d = 0; d < USAGE_DEVICES; d++) {
        for (let h = 0; h < ACTIVE_HOURS; h++) {
          batch.push({
            at: begin + day * DAY + Math.floor(random() * 24) * HOUR,
            imei: imeiOf(d),
            operator: `op-${d % OPERATORS}`,
            service: services[(d + h) % services.length]!,
            logins: 1,
            logouts: 1,
            messagesIn: Math.floor(random() * 20),
            messagesOut: Math.floor(random() * 5),
            bytesIn: Math.floor(random() * 200_000),
            bytesOut: Math.floor(random() * 20_000),
          });
        }
      }
      // In key order, as a day of real traffic arrives (hour by hour): lmdb then appends instead of scattering pages.
      const key = (u: UsageDelta) => `${u.at}|${u.operator}|${u.service}|${u.imei}`;
      batch.sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
      for (let i = 0; i < batch.length; i += 50_000) {
        const part = batch.slice(i, i + 50_000);
        await store.bulkUsage(part);
        rows += part.length;
      }
      console.error(
        `  day ${day + 1}/${DAYS}: ${fmt(rows)} counter rows, ${fmt((performance.now() - genStart) / 1000, 1)} s`,
      );
    }
    const genSeconds = (performance.now() - genStart) / 1000;
    await store.close();
    results.counters = {
      devices: USAGE_DEVICES,
      days: DAYS,
      activeHoursPerDay: ACTIVE_HOURS,
      rows,
      seconds: genSeconds,
      perSecond: rows / genSeconds,
    };

    const from = new Date(begin).toISOString();
    const to = new Date(end).toISOString();
    const reports: Array<[string, string]> = [
      [
        `${DAYS} days hourly (${DAYS * 24} rows), JSON`,
        `/reports/usage?from=${from}&to=${to}&granularity=hour`,
      ],
      [`${DAYS} days daily, JSON`, `/reports/usage?from=${from}&to=${to}&granularity=day`],
      [
        `${DAYS} days hourly, one operator, CSV`,
        `/reports/usage?from=${from}&to=${to}&granularity=hour&operator=op-3&format=csv`,
      ],
      [
        `${DAYS} days daily by service, XML`,
        `/reports/usage?from=${from}&to=${to}&granularity=day&groupBy=service&format=xml`,
      ],
      [
        `${DAYS} days hourly by operator (${DAYS * 24 * OPERATORS} rows), JSON`,
        `/reports/usage?from=${from}&to=${to}&granularity=hour&groupBy=operator`,
      ],
      [
        'last 24 h hourly, mail only, JSON',
        `/reports/usage?from=${new Date(end - DAY).toISOString()}&to=${to}&service=mail`,
      ],
    ];
    const reportLatency: Record<string, { n: number; p50: number; p99: number; bytes: number }> = {};
    const check = JSON.parse(await call('GET', `/reports/usage?from=${from}&to=${to}&granularity=day`));
    if (check.totals.logins !== rows)
      throw new Error(`report total logins ${check.totals.logins} ≠ generated ${rows}`);
    for (const [label, path] of reports) {
      const times: number[] = [];
      let bytes = 0;
      const n = Math.max(10, Math.floor(QUERIES / 3));
      for (let i = 0; i < n; i++) {
        const t0 = performance.now();
        bytes = (await call('GET', path)).length;
        times.push(performance.now() - t0);
      }
      times.sort((a, b) => a - b);
      reportLatency[label] = { n, p50: percentile(times, 50), p99: percentile(times, 99), bytes };
      console.error(
        `  ${label}: p50 ${fmt(reportLatency[label].p50, 1)} ms, p99 ${fmt(reportLatency[label].p99, 1)} ms`,
      );
    }
    results.reports = reportLatency;
  } finally {
    await gw.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }

  // ---- output -------------------------------------------------------------------
  const cpu = cpus()[0]?.model ?? 'unknown';
  const machine = `nproc ${cpus().length} (${cpu}); memory ${fmt(totalmem() / 2 ** 30, 1)} GiB; node ${process.version}`;
  const date = new Date().toISOString();
  const load = `load average (1 min) ${fmt(loadBefore, 1)} at the start, ${fmt(loadavg()[0]!, 1)} at the end`;
  const command = `npm run bench:admin${smoke ? ' -- --smoke' : ''}`;
  const imp = results.import as {
    devices: number;
    seconds: number;
    perSecond: number;
    chunk: number;
    csvMiB: number;
  };
  const ctr = results.counters as { rows: number; seconds: number; perSecond: number };
  const md: string[] = [
    '## Admin',
    '',
    `Measured by \`${command}\` (test/bench/admin/run.ts) on ${date}; ${machine}; ${load}`,
    '(the machine was shared with other work: figures are upper bounds).',
    'A real gateway process (`mmgw start --role admin`) on a fresh data directory; every request through the REST API',
    '(node:http, bearer JWT), sequential, from the same machine.',
    '',
    '| figure | value |',
    '| --- | ---: |',
    `| devices imported (POST /devices/import, CSV, ${fmt(imp.chunk)} rows per request, ${fmt(imp.csvMiB, 1)} MiB in all) | ${fmt(imp.devices)} |`,
    `| import time, s | ${fmt(imp.seconds, 1)} |`,
    `| import rate, devices/s | ${fmt(imp.perSecond)} |`,
  ];
  for (const [label, l] of Object.entries(
    results.latency as Record<string, { n: number; p50: number; p99: number }>,
  )) {
    md.push(`| ${label}: p50 / p99 ms (${l.n} queries) | ${fmt(l.p50, 1)} / ${fmt(l.p99, 1)} |`);
  }
  md.push(
    `| usage counter rows generated into the store (${fmt(USAGE_DEVICES)} devices × ${DAYS} days × ${ACTIVE_HOURS} active hours) | ${fmt(ctr.rows)} |`,
    `| counter generation, rows/s (RecordsStore.write, 50,000 per transaction) | ${fmt(ctr.perSecond)} |`,
  );
  for (const [label, l] of Object.entries(
    results.reports as Record<string, { n: number; p50: number; p99: number }>,
  )) {
    md.push(`| report ${label}: p50 / p99 ms (${l.n} queries) | ${fmt(l.p50, 1)} / ${fmt(l.p99, 1)} |`);
  }
  const text = md.join('\n');
  console.log(text);
  const outDir = join(ROOT, 'test', 'output');
  mkdirSync(outDir, { recursive: true });
  writeFileSync(
    join(outDir, `bench-admin${smoke ? '-smoke' : ''}.json`),
    JSON.stringify({ date, machine, load, command, ...results }, null, 2),
  );
  writeFileSync(join(outDir, `bench-admin${smoke ? '-smoke' : ''}.md`), `${text}\n`);
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});

/**
 * `npm run fuzz -- [--seconds 60] [--devices 8] [--seed N] [--rate 8] [--raw-rate 2]
 *                  [--answer-timeout-ms 60000] [--rss-margin-mib 256] [--json FILE]`
 *
 * Fuzzes a real gateway for a bounded time (test/fuzz/README.md), prints the
 * summary, and exits 1 when there is any finding (2 when the run itself
 * could not be set up).
 */
import { writeFileSync } from 'node:fs';
import { DEFAULT_FUZZ_OPTIONS, type FuzzOptions, type FuzzReport, runFuzz } from './fuzz.ts';
import { formatReport } from './report.ts';

const FLAGS: Record<string, keyof FuzzOptions> = {
  '--seconds': 'seconds',
  '--devices': 'devices',
  '--seed': 'seed',
  '--rate': 'ratePerDevice',
  '--max-inflight': 'maxInflight',
  '--raw-rate': 'rawPerSecond',
  '--answer-timeout-ms': 'answerTimeoutMs',
  '--rss-margin-mib': 'rssMarginMiB',
};

function usage(message: string): never {
  console.error(`${message}\nflags: ${Object.keys(FLAGS).join(' N, ')} N, --json FILE`);
  process.exit(2);
}

function parse(argv: string[]): { options: Partial<FuzzOptions>; json?: string } {
  const options: Partial<FuzzOptions> = {};
  let json: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i] as string;
    const value = argv[++i];
    if (value === undefined) usage(`${flag} needs a value`);
    if (flag === '--json') {
      json = value;
      continue;
    }
    const key = FLAGS[flag];
    if (key === undefined) usage(`unknown flag ${flag}`);
    const n = Number(value);
    if (!Number.isFinite(n) || n < 0) usage(`${flag} must be a number ≥ 0, got ${value}`);
    (options as Record<string, number>)[key] = n;
  }
  if (options.seed === undefined) options.seed = Date.now() % 2 ** 31;
  return { options, ...(json === undefined ? {} : { json }) };
}

function toJson(r: FuzzReport): string {
  const maps = (_key: string, v: unknown) => (v instanceof Map ? Object.fromEntries(v) : v);
  return JSON.stringify(r, maps, 2);
}

const { options, json } = parse(process.argv.slice(2));
const started = Date.now();
// A bug in the fuzzer itself must not pass for a quiet gateway.
process.on('uncaughtException', (err) => {
  console.error('the fuzzer itself failed:', err);
  process.exit(2);
});
// Far past any drain: the run must end whatever happens.
const seconds = options.seconds ?? DEFAULT_FUZZ_OPTIONS.seconds;
setTimeout(
  () => {
    console.error('the fuzzer did not finish in time; exiting');
    process.exit(2);
  },
  (seconds + 300) * 1000,
).unref();

try {
  const report = await runFuzz({ ...options, log: (line) => console.error(line) });
  console.log(formatReport(report));
  console.log(
    `\n(${((Date.now() - started) / 1000).toFixed(0)} s in all; rerun with --seed ${report.options.seed})`,
  );
  if (json !== undefined) writeFileSync(json, toJson(report));
  process.exit(report.tally.findingTotal() === 0 ? 0 : 1);
} catch (err) {
  console.error('the fuzzing run could not be set up or was cut short:', err);
  process.exit(2);
}

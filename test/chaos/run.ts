/**
 * `npm run chaos [-- --handsets N] [--only kill,SIGTERM] [--write]`: the whole
 * chaos suite (minutes on a 2-core machine; not part of `npm test`).
 * `--from DIR`: the cluster starts on the checkout DIR (the release before,
 * built) and the one fault is a rolling upgrade to this tree. Prints
 * the Markdown report (report.ts); --write also puts it into
 * test/bench/RESULTS.md under "Availability". MMGW_TEST_LOG_DIR=dir keeps
 * every gateway process's log there (test/harness/gateway.ts).
 */
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { runChaos } from './chaos.ts';
import { renderReport, writeIntoResults } from './report.ts';

const { values } = parseArgs({
  options: {
    handsets: { type: 'string', default: '40' },
    workers: { type: 'string', default: '2' },
    only: { type: 'string', default: '' },
    'chat-every-ms': { type: 'string', default: '3000' },
    'mail-every-ms': { type: 'string', default: '6000' },
    'observe-ms': { type: 'string', default: '60000' },
    app: { type: 'string', default: 'sdk' },
    write: { type: 'boolean', default: false },
    from: { type: 'string' },
  },
});
const num = (name: string, v: string | undefined): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) {
    process.stderr.write(`chaos: --${name} must be a whole number ≥ 1, not ${v}\n`);
    process.exit(2);
  }
  return n;
};
const appOf = (v: string | undefined): 'sdk' | 'manual' => {
  if (v === 'sdk' || v === 'manual') return v;
  process.stderr.write(`chaos: --app must be sdk or manual, not ${v}\n`);
  process.exit(2);
};

const quoted = (arg: string) => (/^[\w,.=/-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", "'\\''")}'`);

// Ctrl-C or a kill: exit, so that the harness's exit hooks stop every process it started.
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));

const startedAt = new Date();
const app = appOf(values.app);
const results = await runChaos({
  handsets: num('handsets', values.handsets),
  workers: num('workers', values.workers),
  chatEveryMs: num('chat-every-ms', values['chat-every-ms']),
  mailEveryMs: num('mail-every-ms', values['mail-every-ms']),
  baselineMs: 5000,
  freezeMs: 30_000,
  natsOutageMs: 20_000,
  observeMs: num('observe-ms', values['observe-ms']),
  drainMs: 15_000,
  app,
  only: (values.only ?? '').split(',').filter(Boolean),
  ...(values.from === undefined ? {} : { from: values.from }),
  log: (line) => process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${line}\n`),
});
const report = renderReport(results, {
  app,
  command: [
    'npm run chaos',
    ...(process.argv.length > 2 ? ['--'] : []),
    ...process.argv.slice(2).map(quoted),
  ].join(' '),
  startedAt,
  minutes: (Date.now() - startedAt.getTime()) / 60_000,
});
process.stdout.write(report);
if (values.write) {
  const results = fileURLToPath(new URL('../bench/RESULTS.md', import.meta.url));
  writeIntoResults(results, report);
  process.stderr.write(`written into ${results}\n`);
}
// Handles of the SDK or the peers' clients must not keep a finished run alive.
process.exit(0);

import { createReadStream, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { Option } from 'commander';
import { GatewayError } from '../../../device-protocol/errors.ts';
import { DEVICE_CSV_HEADER_HELP, DEVICE_CSV_IMPORT_COLUMNS, DeviceCsvError } from '../../store/device-csv.ts';
import { DEFAULT_IMPORT_MAX_ROWS, type ImportOutcome, importDeviceCsv } from '../../store/device-import.ts';
import type { ImportMode } from '../../store/registry.ts';
import { type CliIo, cliActor } from '../io.ts';
import { printRejected, rejectedJson, saveSecrets, sealerFor } from './import-jobs.ts';
import { type DataOptions, type DeviceSubcommand, dataOption, jsonOption, withRegistry } from './options.ts';
import { devices, iso } from './output.ts';

/** `mmgw device import`: handsets from a CSV file, as an import job (server/store/device-import.ts). */

export interface Progress {
  start(total: number, label: string): void;
  update(done: number): void;
  stop(): void;
}

export async function progressBar(io: CliIo): Promise<Progress> {
  if (!io.isTty) return { start() {}, update() {}, stop() {} };
  const { SingleBar, Presets } = await import('cli-progress');
  let bar: InstanceType<typeof SingleBar> | undefined;
  return {
    start(total, label) {
      bar?.stop();
      bar = new SingleBar(
        {
          format: `${label.padEnd(10)} [{bar}] {percentage}% | {value}/{total}`,
          stream: process.stderr,
          hideCursor: true,
        },
        Presets.shades_classic,
      );
      bar.start(total, 0);
    },
    update(done) {
      bar?.update(done);
    },
    stop() {
      bar?.stop();
      bar = undefined;
    },
  };
}

export interface ImportOptions extends DataOptions {
  mode: ImportMode;
  secretsOut?: string;
  dryRun?: boolean;
  jobId?: string;
  maxRows: string;
}

export async function runImport(file: string, options: ImportOptions, io: CliIo): Promise<number> {
  const path = resolve(file);
  let size: number;
  try {
    size = statSync(path).size;
  } catch (err) {
    throw new GatewayError('request.bad_input', `cannot read ${file}: ${(err as Error).message}`, {
      field: 'file',
    });
  }
  const maxRows = Number(options.maxRows);
  if (!Number.isInteger(maxRows) || maxRows < 1)
    throw new GatewayError('request.bad_input', `--max-rows: a whole number ≥ 1, not ${options.maxRows}`, {
      field: 'max-rows',
    });
  const progress = await progressBar(io);
  return withRegistry(options, async (registry) => {
    const sealer = options.dryRun ? undefined : sealerFor(options);
    let phase = '';
    let outcome: ImportOutcome;
    try {
      outcome = await importDeviceCsv(
        registry,
        { first: createReadStream(path), again: () => createReadStream(path) },
        {
          mode: options.mode,
          dryRun: options.dryRun ?? false,
          maxRows,
          maxRowsSetting: '--max-rows',
          sizeHint: size,
          ...(options.jobId === undefined ? {} : { jobId: options.jobId }),
          actor: cliActor(),
          source: 'file',
          ...(sealer ? { sealer } : {}),
          onJob: (id) =>
            io.err(
              `import job ${id}: writing (if this is interrupted, \`mmgw device import-result ${id}\` tells what became of it)\n`,
            ),
          onProgress(p) {
            if (p.phase !== phase) {
              phase = p.phase;
              progress.start(p.phase === 'checking' ? size : (p.total ?? 0), p.phase);
            }
            progress.update(p.phase === 'checking' ? p.bytes : p.rows);
          },
        },
      );
    } catch (err) {
      if (err instanceof DeviceCsvError) {
        const { line, message } = err.problem;
        throw new GatewayError(
          'registry.import_rejected',
          line === undefined
            ? `${file} is empty: ${message}`
            : `${file} line ${line}: ${message} (columns: ${DEVICE_CSV_IMPORT_COLUMNS.join(', ')}); nothing written`,
        );
      }
      throw err;
    } finally {
      progress.stop();
    }
    const { job } = outcome;
    const failed =
      outcome.written === 0 &&
      (job?.state === 'failed' || (options.mode === 'all-or-nothing' && outcome.rejectedCount > 0));
    let secretsFile: string | null = null;
    let saved = 0;
    if (sealer && job && options.secretsOut && job.secrets === 'sealed') {
      saved = await saveSecrets(registry, job, options.secretsOut, sealer);
      secretsFile = resolve(options.secretsOut);
    }
    const generated = job?.generatedSecrets ?? job?.written ?? 0;
    const summary = options.dryRun
      ? `${options.mode}, dry run: would write ${outcome.written} of ${outcome.total} rows; ${outcome.rejectedCount} rejected`
      : failed
        ? `all-or-nothing: ${outcome.rejectedCount} ${outcome.rejectedCount === 1 ? 'row' : 'rows'} rejected, nothing written`
        : `${options.mode}: wrote ${outcome.written} of ${outcome.total} rows; ${outcome.rejectedCount} rejected`;

    if (options.json) {
      io.out(
        JSON.stringify({
          mode: outcome.mode,
          ...(options.dryRun ? { dryRun: true } : {}),
          total: outcome.total,
          // A dry run writes nothing: what it would write is its own field.
          written: options.dryRun ? 0 : outcome.written,
          ...(options.dryRun ? { wouldWrite: outcome.written } : {}),
          rejectedCount: outcome.rejectedCount,
          rejected: rejectedJson(outcome.rejected),
          ...(job ? { job: job.id } : {}),
          ...(outcome.replayed ? { replayed: true } : {}),
          ...(failed
            ? { error: { code: 'registry.import_rejected', message: summary } }
            : options.dryRun
              ? {}
              : {
                  secretsFile,
                  secretsNotSaved: secretsFile ? 0 : job?.secrets === 'sealed' ? generated : 0,
                }),
        }) + '\n',
      );
    } else {
      printRejected(io, outcome.rejected, outcome.rejectedCount);
      (failed ? io.err : io.out)(`${summary}\n`);
      if (outcome.replayed && job)
        io.err(`the result of import job ${job.id}, done earlier: nothing was written now\n`);
      if (secretsFile) io.out(`secrets of ${devices(saved)} written to ${secretsFile} (mode 0600)\n`);
      else if (!failed && job?.secrets === 'sealed')
        io.err(
          `note: the secrets of ${devices(job.written)} (${generated} generated) were not saved; ` +
            `\`mmgw device import-result ${job.id} --secrets-out FILE\` saves them once, until ${iso(job.secretsExpireAt)}\n`,
        );
    }
    return failed ? 1 : 0;
  });
}

export const addImportCommand: DeviceSubcommand = (device, { wrap, io }) => {
  device
    .command('import')
    .description(
      `add handsets from a CSV file with a header (${DEVICE_CSV_HEADER_HELP}). ` +
        'Every row is checked first; rejected rows are listed with their line numbers.',
    )
    .argument('<file>', 'CSV file')
    .addOption(
      new Option(
        '--mode <mode>',
        'all-or-nothing: write nothing if any row is bad; valid-only: write the good rows',
      )
        .choices(['all-or-nothing', 'valid-only'])
        .default('all-or-nothing'),
    )
    .option('--dry-run', 'check every row and write nothing')
    .option(
      '--job-id <id>',
      'name the import job (letters, digits . _ : -): run again after an interruption, it answers the finished job instead of refusing every row as a duplicate',
    )
    .option('--max-rows <n>', 'refuse a file with more rows than this', String(DEFAULT_IMPORT_MAX_ROWS))
    .option('--secrets-out <file>', "write the new devices' secrets here as CSV (imei,secret), mode 0600")
    .addOption(dataOption())
    .addOption(jsonOption())
    .action(wrap((file: string, o: ImportOptions) => runImport(file, o, io)));
};

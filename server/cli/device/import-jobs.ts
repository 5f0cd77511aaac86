import { resolve } from 'node:path';
import { GatewayError } from '../../../device-protocol/errors.ts';
import { csvLineVerbatim } from '../../store/device-csv.ts';
import type { ImportJob, Sealer } from '../../store/import-jobs.ts';
import { importResultSealer } from '../../store/import-sealer.ts';
import type { ImportRejection, Registry } from '../../store/registry.ts';
import type { CliIo } from '../io.ts';
import { registryPlace } from '../registry-place.ts';
import { type DataOptions, type DeviceSubcommand, dataOption, jsonOption, withRegistry } from './options.ts';
import { devices, iso, writeAtomically } from './output.ts';

/**
 * `mmgw device import-result|imports`: import jobs after the fact, and what
 * `mmgw device import` shares with them (rejections shown, secrets saved once).
 */

/** The sealer of import results, from the credentials key the gateway on this data directory uses. */
export function sealerFor(options: DataOptions): Sealer {
  const place = registryPlace(options);
  return importResultSealer({ dataDir: place.data, key: place.credentialsKey });
}

/**
 * Writes the job's secrets to a file (atomically, 0600) and wipes them from
 * the registry: they have been delivered. Returns how many were written.
 */
export async function saveSecrets(
  registry: Registry,
  job: ImportJob,
  file: string,
  sealer: Sealer,
): Promise<number> {
  let count = 0;
  function* lines(): Generator<string> {
    yield csvLineVerbatim(['imei', 'secret']);
    for (const batch of registry.imports.secrets(job.id, sealer))
      for (const s of batch) {
        count++;
        yield csvLineVerbatim([s.imei, s.secret]);
      }
  }
  writeAtomically(resolve(file), lines(), 0o600);
  await registry.imports.wipeSecrets(job.id, 'delivered');
  return count;
}

export function printRejected(io: CliIo, rejected: ImportRejection[], count: number): void {
  const shown = rejected.slice(0, 200);
  for (const r of shown) io.err(`line ${r.line ?? '?'}: ${r.reason}\n`);
  if (count > shown.length) io.err(`… and ${count - shown.length} more rejected rows\n`);
}

export function rejectedJson(rejected: ImportRejection[]) {
  return rejected.map((r) => ({ line: r.line, imei: r.imei, code: r.code, reason: r.reason }));
}

export async function runImportResult(
  id: string,
  options: DataOptions & { secretsOut?: string },
  io: CliIo,
): Promise<number> {
  return withRegistry(
    options,
    async (registry) => {
      await registry.imports.recover();
      const job = registry.imports.get(id);
      if (!job) throw new GatewayError('registry.not_found', `no import job ${id}`, { field: 'id' });
      let secretsFile: string | null = null;
      let saved = 0;
      if (options.secretsOut && job.secrets === 'sealed') {
        saved = await saveSecrets(registry, job, options.secretsOut, sealerFor(options));
        secretsFile = resolve(options.secretsOut);
      }
      const view = registry.imports.get(id) ?? job;
      if (options.json) {
        const { owner: _o, closing: _c, secretChunks: _n, ...rest } = view;
        io.out(JSON.stringify({ ...rest, rejected: rejectedJson(view.rejected), secretsFile }) + '\n');
      } else {
        printRejected(io, view.rejected, view.rejectedCount);
        io.out(
          `job ${view.id}: ${view.state}; ${view.mode}: wrote ${view.written} of ${view.total} rows; ` +
            `${view.rejectedCount} rejected; by ${view.actor.actor} at ${iso(view.startedAt)}\n`,
        );
        if (view.reason) io.out(`${view.reason}\n`);
        if (secretsFile) io.out(`secrets of ${devices(saved)} written to ${secretsFile} (mode 0600)\n`);
        else if (view.secrets === 'sealed')
          io.out(
            `secrets of ${devices(view.written)} are kept sealed until ${iso(view.secretsExpireAt)}: --secrets-out FILE saves them (once)\n`,
          );
        else if (view.secrets === 'delivered' || view.secrets === 'expired')
          io.out(
            `its secrets were ${view.secrets === 'delivered' ? `delivered at ${iso(view.secretsDeliveredAt)}` : 'not fetched in time'} and are gone; \`mmgw device reset-secret IMEI\` makes a new one\n`,
          );
      }
      return view.state === 'done' ? 0 : 1;
    },
    'read',
  );
}

export const addImportJobCommands: DeviceSubcommand = (device, { wrap, io }) => {
  device
    .command('import-result')
    .description(
      "an import job's result, also after the import was interrupted: its rows, rejections and (once, within 24 h) its devices' secrets",
    )
    .argument('<id>', 'job id (`mmgw device imports` lists them)')
    .option(
      '--secrets-out <file>',
      'write the secrets here as CSV (imei,secret), mode 0600; then they are gone',
    )
    .addOption(dataOption())
    .addOption(jsonOption())
    .action(wrap((id: string, o: DataOptions & { secretsOut?: string }) => runImportResult(id, o, io)));

  device
    .command('imports')
    .description('recent import jobs, newest first (an interrupted one is rolled back and listed so)')
    .addOption(dataOption())
    .addOption(jsonOption())
    .action(
      wrap(async (o: DataOptions) => {
        const jobs = await withRegistry(
          o,
          async (r) => {
            await r.imports.recover();
            return r.imports.list(50);
          },
          'read',
        );
        if (o.json)
          io.out(
            JSON.stringify({
              jobs: jobs.map((j) => ({
                id: j.id,
                state: j.state,
                mode: j.mode,
                total: j.total,
                written: j.written,
                rejectedCount: j.rejectedCount,
                actor: j.actor.actor,
                startedAt: j.startedAt,
                secrets: j.secrets,
              })),
            }) + '\n',
          );
        else if (jobs.length === 0) io.out('no import jobs\n');
        else
          for (const j of jobs)
            io.out(
              `${j.id}\t${j.state}\t${j.mode}\t${j.written}/${j.total}\t${iso(j.startedAt)}\t${j.actor.actor}\n`,
            );
        return 0;
      }),
    );
};

import { closeSync, createReadStream, openSync, renameSync, statSync, writeSync } from 'node:fs';
import { hostname, userInfo } from 'node:os';
import { resolve } from 'node:path';
import { Command, Option } from 'commander';
import { GatewayError } from '../../device-protocol/errors.ts';
import type { AuditActor } from '../store/audit-outbox.ts';
import {
  csvLineVerbatim,
  DEVICE_CSV_COLUMNS,
  DEVICE_CSV_HEADER_HELP,
  DEVICE_CSV_IMPORT_COLUMNS,
  DeviceCsvError,
  deviceCsvHeader,
  deviceCsvLine,
} from '../store/device-csv.ts';
import { DEFAULT_IMPORT_MAX_ROWS, type ImportOutcome, importDeviceCsv } from '../store/device-import.ts';
import { type ProvisionedAccount, setDeviceAccount } from '../store/device-profile.ts';
import { imeiProblem } from '../store/imei.ts';
import type { ImportJob, Sealer } from '../store/import-jobs.ts';
import { importResultSealer } from '../store/import-sealer.ts';
import type { Device, DeviceStatus } from '../store/records.ts';
import { type ImportMode, type ImportRejection, Registry } from '../store/registry.ts';
import { CredentialCipher } from '../transport/credentials.ts';
import { passwordFromStdin, promptPassword } from './admin.ts';

/**
 * `mmgw device …`: provisioning from a shell. Works on the data directory
 * directly, whether or not a gateway runs on it (lmdb is multi-process safe;
 * a running gateway sees a change on its next read). Every change is audited
 * like one made through the API, as `cli:<os user>` (cliActor): the registry
 * writes the entry in the change's own transaction, and the admin role moves
 * it to the audit log.
 */

export interface CliIo {
  out(text: string): void;
  err(text: string): void;
  /** Is stderr a terminal (progress bars only there)? */
  isTty: boolean;
}

/** Who changes things from this shell, for the audit log. */
export function cliActor(): AuditActor {
  let user: string;
  try {
    user = userInfo().username;
  } catch {
    // No passwd entry (some containers): the uid still says who.
    user = process.env.USER || `uid-${process.getuid?.() ?? 'unknown'}`;
  }
  return { actor: `cli:${user}`, role: 'cli', address: hostname() };
}

export const processIo: CliIo = {
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
  isTty: Boolean(process.stderr.isTTY),
};

interface DataOptions {
  data: string;
  json?: boolean;
}

function defaultData(): string {
  return process.env.MMGW_DATA || './data';
}

function dataOption(): Option {
  return new Option('--data <dir>', 'data directory (env MMGW_DATA)').default(
    defaultData(),
    'MMGW_DATA or ./data',
  );
}

function jsonOption(): Option {
  return new Option('--json', 'machine-readable output (one JSON object)');
}

/** Opens the registry for one command. Only add and import create one where there is none. */
async function withRegistry<T>(
  options: DataOptions,
  fn: (r: Registry) => Promise<T>,
  access: 'read' | 'write' = 'write',
): Promise<T> {
  const registry = await Registry.open(resolve(options.data), { mustExist: access === 'read' });
  try {
    return await fn(registry);
  } finally {
    await registry.close();
  }
}

function checkImeiArg(imei: string): void {
  const problem = imeiProblem(imei);
  if (problem) throw new GatewayError('registry.invalid_imei', problem, { field: 'imei' });
}

function iso(ms: number | undefined): string {
  return ms === undefined ? '' : new Date(ms).toISOString();
}

function describeDevice(d: Device): string {
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

function table(devices: Device[]): string {
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
function writeAtomically(path: string, chunks: Iterable<string>, mode = 0o644): void {
  const tmp = `${path}.${process.pid}.tmp`;
  const fd = openSync(tmp, 'w', mode);
  try {
    for (const chunk of chunks) writeSync(fd, chunk);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

function secretNotice(secret: string): string {
  return `secret    ${secret}\n(shown only this once: give it to the handset now; \`mmgw device reset-secret\` makes a new one)\n`;
}

// ---- import -------------------------------------------------------------

interface Progress {
  start(total: number, label: string): void;
  update(done: number): void;
  stop(): void;
}

async function progressBar(io: CliIo): Promise<Progress> {
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

interface ImportOptions extends DataOptions {
  mode: ImportMode;
  secretsOut?: string;
  dryRun?: boolean;
  jobId?: string;
  maxRows: string;
}

/** The sealer of import results, from the credentials key the gateway on this data directory uses. */
function sealerFor(options: DataOptions): Sealer {
  return importResultSealer({ dataDir: resolve(options.data), key: process.env.MMGW_CREDENTIALS_KEY });
}

/**
 * Writes the job's secrets to a file (atomically, 0600) and wipes them from
 * the registry: they have been delivered. Returns how many were written.
 */
async function saveSecrets(
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

function printRejected(io: CliIo, rejected: ImportRejection[], count: number): void {
  const shown = rejected.slice(0, 200);
  for (const r of shown) io.err(`line ${r.line ?? '?'}: ${r.reason}\n`);
  if (count > shown.length) io.err(`… and ${count - shown.length} more rejected rows\n`);
}

function rejectedJson(rejected: ImportRejection[]) {
  return rejected.map((r) => ({ line: r.line, imei: r.imei, code: r.code, reason: r.reason }));
}

async function runImport(file: string, options: ImportOptions, io: CliIo): Promise<number> {
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
          written: outcome.written,
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
      if (secretsFile) io.out(`secrets of ${saved} devices written to ${secretsFile} (mode 0600)\n`);
      else if (!failed && job?.secrets === 'sealed')
        io.err(
          `note: the secrets of ${job.written} devices (${generated} generated) were not saved; ` +
            `\`mmgw device import-result ${job.id} --secrets-out FILE\` saves them once, until ${iso(job.secretsExpireAt)}\n`,
        );
    }
    return failed ? 1 : 0;
  });
}

async function runImportResult(
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
        if (secretsFile) io.out(`secrets of ${saved} devices written to ${secretsFile} (mode 0600)\n`);
        else if (view.secrets === 'sealed')
          io.out(
            `secrets of ${view.written} devices are kept sealed until ${iso(view.secretsExpireAt)}: --secrets-out FILE saves them (once)\n`,
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

// ---- command tree ----------------------------------------------------------

type Action = (...args: any[]) => Promise<number>;

/**
 * Builds `mmgw device`. `wrap` turns an action's thrown error into the CLI's
 * error output and exit code (server/cli/main.ts).
 */
export function deviceCommand(
  wrap: (action: Action) => (...args: any[]) => Promise<void>,
  io: CliIo = processIo,
): Command {
  const device = new Command('device').description('provision and manage handsets in the registry');

  device
    .command('add')
    .description('provision a handset; prints its one-time secret')
    .requiredOption('--imei <imei>', '15 digits with a valid Luhn check digit')
    .option('--imsi <imsi>', '14 or 15 digits')
    .requiredOption('--operator <name>', 'operator (tenant) the handset belongs to')
    .option('--profile <name>', 'service profile')
    .addOption(dataOption())
    .addOption(jsonOption())
    .action(
      wrap(async (o: DataOptions & { imei: string; imsi?: string; operator: string; profile?: string }) => {
        const { device: d, secret } = await withRegistry(o, (r) =>
          r.addDevice(
            {
              imei: o.imei,
              operator: o.operator,
              ...(o.imsi ? { imsi: o.imsi } : {}),
              ...(o.profile ? { profile: o.profile } : {}),
            },
            cliActor(),
          ),
        );
        io.out(
          o.json ? JSON.stringify({ device: d, secret }) + '\n' : describeDevice(d) + secretNotice(secret),
        );
        return 0;
      }),
    );

  device
    .command('list')
    .description('list handsets (IMEI order)')
    .option('--operator <name>')
    .addOption(new Option('--status <status>').choices(['enabled', 'disabled']))
    .option('--prefix <digits>', 'IMEI prefix, e.g. a TAC')
    .option('--limit <n>', 'at most this many', '1000')
    .option('--after <imei>', 'start after this IMEI (paging)')
    .addOption(dataOption())
    .addOption(jsonOption())
    .action(
      wrap(
        async (
          o: DataOptions & {
            operator?: string;
            status?: DeviceStatus;
            prefix?: string;
            limit: string;
            after?: string;
          },
        ) => {
          const limit = Number(o.limit);
          if (!Number.isInteger(limit) || limit < 1) {
            throw new GatewayError(
              'request.bad_input',
              `--limit: expected a whole number ≥ 1, got ${JSON.stringify(o.limit)}`,
            );
          }
          if (o.prefix !== undefined && !/^\d{1,15}$/.test(o.prefix)) {
            throw new GatewayError(
              'request.bad_input',
              `--prefix: expected 1-15 digits, got ${JSON.stringify(o.prefix)}`,
            );
          }
          const devices = await withRegistry(
            o,
            async (r) =>
              r.listDevices({
                limit: limit + 1,
                ...(o.operator ? { operator: o.operator } : {}),
                ...(o.status ? { status: o.status } : {}),
                ...(o.prefix ? { prefix: o.prefix } : {}),
                ...(o.after ? { after: o.after } : {}),
              }),
            'read',
          );
          const more = devices.length > limit;
          const page = devices.slice(0, limit);
          const next = more ? page.at(-1)?.imei : undefined;
          if (o.json) io.out(JSON.stringify({ devices: page, ...(next ? { next } : {}) }) + '\n');
          else {
            io.out(page.length === 0 ? 'no devices\n' : table(page));
            if (next) io.err(`more: --after ${next}\n`);
          }
          return 0;
        },
      ),
    );

  device
    .command('show')
    .description('one handset')
    .argument('<imei>')
    .addOption(dataOption())
    .addOption(jsonOption())
    .action(
      wrap(async (imei: string, o: DataOptions) => {
        checkImeiArg(imei);
        const d = await withRegistry(o, async (r) => r.getDevice(imei), 'read');
        if (!d) throw new GatewayError('registry.not_found', `no device with IMEI ${imei}`);
        io.out(o.json ? JSON.stringify({ device: d }) + '\n' : describeDevice(d));
        return 0;
      }),
    );

  for (const [name, status] of [
    ['enable', 'enabled'],
    ['disable', 'disabled'],
  ] as const) {
    device
      .command(name)
      .description(
        name === 'disable'
          ? 'refuse the handset from now on (its live session is refused at its next auth)'
          : 'allow the handset again',
      )
      .argument('<imei>')
      .addOption(dataOption())
      .addOption(jsonOption())
      .action(
        wrap(async (imei: string, o: DataOptions) => {
          checkImeiArg(imei);
          const d = await withRegistry(o, (r) => r.setStatus(imei, status, cliActor()), 'read');
          io.out(o.json ? JSON.stringify({ device: d }) + '\n' : `${imei}: ${d.status}\n`);
          return 0;
        }),
      );
  }

  device
    .command('remove')
    .description('delete the handset from the registry')
    .argument('<imei>')
    .addOption(dataOption())
    .addOption(jsonOption())
    .action(
      wrap(async (imei: string, o: DataOptions) => {
        checkImeiArg(imei);
        await withRegistry(o, (r) => r.removeDevice(imei, cliActor()), 'read');
        io.out(o.json ? JSON.stringify({ removed: imei }) + '\n' : `removed ${imei}\n`);
        return 0;
      }),
    );

  device
    .command('reset-secret')
    .description('replace the handset secret (the old one stops working); prints the new one once')
    .argument('<imei>')
    .addOption(dataOption())
    .addOption(jsonOption())
    .action(
      wrap(async (imei: string, o: DataOptions) => {
        checkImeiArg(imei);
        const { device: d, secret } = await withRegistry(o, (r) => r.resetSecret(imei, cliActor()), 'read');
        io.out(
          o.json ? JSON.stringify({ device: d, secret }) + '\n' : describeDevice(d) + secretNotice(secret),
        );
        return 0;
      }),
    );

  // ---- provisioned accounts: credentials for the presets of the handset's service profile ----

  const account = device
    .command('account')
    .description(
      "accounts provisioned for the presets of a handset's service profile (brought up by the transport)",
    );
  const accountJson = (a: ProvisionedAccount) => {
    const { secret: _secret, ...rest } = a;
    return rest;
  };

  account
    .command('set')
    .description(
      'set the credentials of one preset; the password (from a prompt or --password-stdin) is sealed with the credentials key',
    )
    .argument('<imei>')
    .argument('<label>', "a preset label of the handset's service profile")
    .option('--address <address>', 'mail: the e-mail address')
    .option('--user <user>', 'mail: the login name (default the address); chat: the JID')
    .option('--jid <jid>', 'chat: the bare JID')
    .option('--password-stdin', 'read the password from the first line of stdin')
    .addOption(dataOption())
    .addOption(jsonOption())
    .action(
      wrap(
        async (
          imei: string,
          label: string,
          o: DataOptions & { address?: string; user?: string; jid?: string; passwordStdin?: boolean },
        ) => {
          checkImeiArg(imei);
          const password = o.passwordStdin
            ? await passwordFromStdin()
            : await promptPassword(`password for ${label} of ${imei}: `);
          // The key the transport opens it with: MMGW_CREDENTIALS_KEY, else <data>/keys/credentials.key.
          const cipher = CredentialCipher.open({
            dataDir: resolve(o.data),
            key: process.env.MMGW_CREDENTIALS_KEY,
          });
          const r = await withRegistry(
            o,
            (reg) =>
              setDeviceAccount(
                reg,
                imei,
                {
                  label,
                  password,
                  ...(o.address === undefined ? {} : { address: o.address }),
                  ...(o.user === undefined ? {} : { user: o.user }),
                  ...(o.jid === undefined ? {} : { jid: o.jid }),
                },
                (secret, context) => cipher.encrypt(secret, context),
                cliActor(),
              ),
            'read',
          );
          io.out(
            o.json
              ? JSON.stringify({ account: accountJson(r.after), created: r.before === undefined }) + '\n'
              : `${imei}: ${r.before ? 'updated' : 'set'} ${r.after.service} account ${label} (${r.after.user}); it comes up at the handset's next connect\n`,
          );
          return 0;
        },
      ),
    );

  account
    .command('list')
    .description("a handset's provisioned accounts (never the passwords)")
    .argument('<imei>')
    .addOption(dataOption())
    .addOption(jsonOption())
    .action(
      wrap(async (imei: string, o: DataOptions) => {
        checkImeiArg(imei);
        const list = await withRegistry(o, async (r) => r.listDeviceAccounts(imei), 'read');
        if (o.json) io.out(JSON.stringify({ accounts: list.map(accountJson) }) + '\n');
        else if (list.length === 0) io.out('no accounts\n');
        else for (const a of list) io.out(`${a.label}\t${a.service}\t${a.user}\t${iso(a.updatedAt)}\n`);
        return 0;
      }),
    );

  account
    .command('remove')
    .description('remove a provisioned account (the transport drops it at the next connect)')
    .argument('<imei>')
    .argument('<label>')
    .addOption(dataOption())
    .addOption(jsonOption())
    .action(
      wrap(async (imei: string, label: string, o: DataOptions) => {
        checkImeiArg(imei);
        await withRegistry(o, (r) => r.removeDeviceAccount(imei, label, cliActor()), 'read');
        io.out(o.json ? JSON.stringify({ removed: label }) + '\n' : `${imei}: removed account ${label}\n`);
        return 0;
      }),
    );

  device
    .command('export')
    .description(`write every handset as CSV (${DEVICE_CSV_COLUMNS.join(',')}); no secrets`)
    .option('--out <file>', 'write here (atomically) instead of stdout')
    .addOption(dataOption())
    .action(
      wrap(async (o: DataOptions & { out?: string }) => {
        await withRegistry(
          o,
          async (r) => {
            function* lines(): Generator<string> {
              yield deviceCsvHeader();
              for (const d of r.iterateDevices()) yield deviceCsvLine(d);
            }
            if (o.out) writeAtomically(resolve(o.out), lines());
            else {
              let chunk = '';
              for (const line of lines()) {
                chunk += line;
                if (chunk.length > 64 * 1024) {
                  io.out(chunk);
                  chunk = '';
                }
              }
              io.out(chunk);
            }
          },
          'read',
        );
        return 0;
      }),
    );

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

  return device;
}

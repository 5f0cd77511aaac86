/**
 * The `mmgw` command (bin/mmgw.js runs its build, dist/server/cli/main.js).
 *
 * Exit codes: 0 ok; 1 the command ran but refused its input as a whole (an
 * all-or-nothing import with rejected rows); 2 an error (bad flag, bad
 * config, invalid IMEI, unknown device, port in use, …), with a one-line
 * message on stderr, or {"error":{"code","message"}} on stdout with --json.
 */
import { Command, CommanderError, Option } from 'commander';
import { toGatewayError } from '../../device-protocol/errors.ts';
import { adminCommand } from './admin.ts';
import { deviceCommand, processIo } from './device.ts';
import { registryCommand } from './registry.ts';
import { nodeCommand } from './node.ts';
import { operatorCommand } from './operator.ts';

type Action = (...args: any[]) => Promise<number>;

function printError(err: unknown, json: boolean): void {
  const gw = toGatewayError(err);
  // An unexpected failure keeps its own message (a stack trace helps nobody at a prompt).
  const message = gw.code === 'internal' && gw.cause instanceof Error ? gw.cause.message : gw.message;
  if (json) process.stdout.write(JSON.stringify({ error: { code: gw.code, message } }) + '\n');
  else process.stderr.write(`mmgw: ${message}\n`);
}

/** Runs an action; its number is the exit code, a throw is printed and exits 2. */
function wrap(action: Action) {
  return async (...args: any[]): Promise<void> => {
    const command = args[args.length - 1] as Command;
    const json = Boolean(command.opts().json);
    try {
      process.exitCode = await action(...args);
    } catch (err) {
      printError(err, json);
      process.exitCode = 2;
    }
  };
}

function collect(value: string, previous: string[] = []): string[] {
  return previous.concat(value);
}

export function buildProgram(): Command {
  const program = new Command('mmgw')
    .description('mobile messaging gateway')
    .version(process.env.npm_package_version ?? '0.1.0')
    .exitOverride();

  program
    .command('start')
    .description(
      'start a gateway node with the given roles (default: all of them; the transport and the transcoder in supervised child processes)',
    )
    .option('--config <file>', 'JSON config file (env MMGW_CONFIG)')
    .option('--data <dir>', 'data directory (env MMGW_DATA; default ./data)')
    .option('--port <n>', 'device endpoint port, 0 = any free (env MMGW_PORT; default 8080)')
    .option('--admin-port <n>', 'ops/admin endpoint port, 0 = any free (env MMGW_ADMIN_PORT; default 8081)')
    .option('--host <addr>', 'address the device endpoint binds to (env MMGW_HOST; default 0.0.0.0)')
    .option(
      '--admin-host <addr>',
      'address the ops/admin endpoint binds to (env MMGW_ADMIN_HOST; default 127.0.0.1)',
    )
    .option(
      '--role <role>',
      'all|edge|transport|transcoder|admin; repeatable or comma-separated (env MMGW_ROLE; default all)',
      collect,
    )
    .option('--bus <url>', 'inproc or nats://host:port[,…] (env MMGW_BUS; default inproc)')
    .option('--node-id <id>', 'node id (env MMGW_NODE_ID; default host name + random suffix)')
    .addOption(
      new Option(
        '--engine <engine>',
        'device socket engine, uws|portable (env MMGW_ENGINE; default uws, portable with TLS)',
      ),
    )
    .option(
      '--tls-cert <file>',
      'PEM certificate chain: wss:// and https:// on both ports (env MMGW_TLS_CERT)',
    )
    .option('--tls-key <file>', 'PEM private key of --tls-cert (env MMGW_TLS_KEY)')
    .option(
      '--ops-client-ca <file>',
      'PEM CA: /metrics and /readyz then need a client certificate it signed (env MMGW_OPS_CLIENT_CA)',
    )
    .option('--edge-workers <n>', 'edge processes sharing the device port (env MMGW_EDGE_WORKERS; default 1)')
    .option(
      '--log-level <level>',
      'fatal|error|warn|info|debug|trace|silent (env MMGW_LOG_LEVEL; default info)',
    )
    .option(
      '--ready-file <file>',
      'when every role is up, write {pid,nodeId,devicePort,adminPort} here (atomically)',
    )
    .option(
      '--no-supervise',
      'every role in this one process; by default the transport and the transcoder run in child processes restarted when they crash (env MMGW_SUPERVISE)',
    )
    .addOption(new Option('--internal-edge-worker <index>').hideHelp())
    .action(
      wrap(async (o: Record<string, any>) => {
        if (o.internalEdgeWorker !== undefined) {
          const { runEdgeWorker } = await import('../supervision/child.ts');
          return runEdgeWorker(Number(o.internalEdgeWorker));
        }
        const { runStart } = await import('../node.ts');
        return runStart({
          ...(o.config === undefined ? {} : { file: o.config }),
          flags: {
            data: o.data,
            port: o.port,
            adminPort: o.adminPort,
            host: o.host,
            adminHost: o.adminHost,
            roles: o.role,
            bus: o.bus,
            nodeId: o.nodeId,
            engine: o.engine,
            edgeWorkers: o.edgeWorkers,
            logLevel: o.logLevel,
            readyFile: o.readyFile,
            tlsCert: o.tlsCert,
            tlsKey: o.tlsKey,
            opsClientCa: o.opsClientCa,
            // Commander sets supervise to true when --no-supervise is absent: only the flag itself counts.
            ...(o.supervise === false ? { supervise: false } : {}),
          },
        });
      }),
    );

  program.addCommand(deviceCommand(wrap, processIo));
  program.addCommand(operatorCommand(wrap, processIo));
  program.addCommand(adminCommand(wrap, processIo));
  program.addCommand(registryCommand(wrap, processIo));
  program.addCommand(nodeCommand(wrap, processIo));

  program
    .command('handset')
    .description('a terminal handset: interactive, or JSON lines on stdin/stdout with --json')
    .requiredOption(
      '--url <url>',
      'gateway device endpoint, e.g. ws://127.0.0.1:8080; repeat it for several edges (tried in turn, the last good one first)',
      (url: string, urls: string[] | undefined) => [...(urls ?? []), url],
    )
    .requiredOption('--imei <imei>', 'the handset IMEI')
    .option('--secret <secret>', 'device secret (env MMGW_DEVICE_SECRET)')
    .addOption(new Option('--transport <carrier>', 'carrier').choices(['ws', 'poll', 'auto']).default('auto'))
    .option('--json', 'JSON lines on stdin and stdout (scriptable)')
    .option(
      '--ca <file>',
      'PEM CA certificate(s) to trust for wss:// and https:// (a gateway with a private CA)',
    )
    .option(
      '--no-compression',
      'WebSocket frames uncompressed (SPEC.md §4.4), e.g. to read them in a capture',
    )
    .action(
      wrap(
        async (o: {
          url: string[];
          imei: string;
          secret?: string;
          transport: 'ws' | 'poll' | 'auto';
          json?: boolean;
          compression: boolean;
          ca?: string;
        }) => {
          const { runHandset, readCaFile } = await import('./handset.ts');
          const secret = o.secret ?? process.env.MMGW_DEVICE_SECRET;
          const ca = o.ca === undefined ? undefined : readCaFile(o.ca);
          return runHandset({
            urls: o.url,
            imei: o.imei,
            ...(secret === undefined ? {} : { secret }),
            json: Boolean(o.json),
            transport: o.transport,
            handsetOptions: {
              ...(o.compression ? {} : { compression: false }),
              ...(ca === undefined ? {} : { ca }),
            },
          });
        },
      ),
    );

  program
    .command('transcode <file>')
    .description('shrink an image with the transcoder pipeline; print sizes before and after')
    .option('--width <px>', 'fit inside this width (default 320)')
    .option('--height <px>', 'and inside this height')
    .option('--format <format>', 'jpeg|webp|png (default jpeg)')
    .option('--max-bytes <n>', 'byte budget of the variant (default 30000)')
    .option('--animate', 'keep the animation (webp only)')
    .option('--max-pixels <n>', 'input pixel limit, all frames counted (default 50000000)')
    .option('-o, --out <file>', 'write the variant here (default: only print sizes)')
    .option('--json', 'print the result as JSON')
    .action(
      wrap(async (file: string, o: Record<string, any>) =>
        (await import('./transcode.ts')).runTranscode({ file, ...o }),
      ),
    );

  return program;
}

/** Commander's own errors (unknown option, missing argument) must not exit by themselves: we pick the code. */
function configureTree(command: Command, json: boolean, captured: { text: string }): void {
  command.exitOverride();
  command.showHelpAfterError(json ? false : '(run with --help for usage)');
  if (json) command.configureOutput({ writeErr: (s) => (captured.text += s) });
  for (const sub of command.commands) configureTree(sub, json, captured);
}

export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  const json = argv.includes('--json');
  const captured = { text: '' };
  configureTree(program, json, captured);
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version exit 0; usage errors (printed by commander) exit 2.
      if (err.exitCode === 0) {
        process.exitCode = 0;
        return;
      }
      if (json) {
        const message = (captured.text || err.message).replace(/^error: /, '').trim();
        process.stdout.write(JSON.stringify({ error: { code: 'request.bad_input', message } }) + '\n');
      }
      process.exitCode = 2;
      return;
    }
    printError(err, json);
    process.exitCode = 2;
  }
}

await main(process.argv);

/**
 * `mmgw registry export|import`: a whole registry moved between the
 * single-node lmdb store (`--data DIR`) and a NATS cluster's shared state
 * (`--bus nats://…`), as JSON lines (server/store/registry-transfer.ts).
 *
 *   mmgw registry export --data ./data > registry.jsonl
 *   mmgw registry import --bus nats://n1:4222,nats://n2:4222,nats://n3:4222 --file registry.jsonl
 *
 * Without --data or --bus they work on the registry the config names, as the
 * other commands do (registry-place.ts). Each says on stderr which registry it
 * reads or writes, and an import's answer names it too.
 *
 * An import writes everything or nothing into lmdb (one transaction); into a
 * cluster it is create-if-absent per key and may be run again after a failure.
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Command, Option } from 'commander';
import { GatewayError } from '../../device-protocol/errors.ts';
import { Registry } from '../store/registry.ts';
import {
  exportHeader,
  exportLine,
  exportShared,
  importShared,
  parseExport,
  type TransferRecord,
} from '../store/registry-transfer.ts';
import { stateReplicas, stateServers } from '../store/shared/cluster.ts';
import type { NatsKvSharedState } from '../store/shared/nats-kv.ts';
import type { CliIo } from './io.ts';
import { connectCluster, describePlace, type RegistryPlace, registryPlace } from './registry-place.ts';

interface Where {
  data?: string;
  bus?: string;
  replicas?: string;
  config?: string;
  json?: boolean;
}

/** --data (lmdb) or --bus (a cluster) when given, else what the config says, as for the other commands. */
function where(o: Where): RegistryPlace {
  if (o.data !== undefined && o.bus !== undefined) {
    throw new GatewayError('config.invalid', 'give --data (lmdb) or --bus (a NATS cluster), not both', {
      field: 'bus',
    });
  }
  if (o.bus !== undefined) {
    if (!/^(nats|tls):\/\//.test(o.bus)) {
      throw new GatewayError('config.invalid', '--bus: nats://host:port (several separated by commas)', {
        field: 'bus',
      });
    }
    const replicas = o.replicas === undefined ? undefined : Number(o.replicas);
    if (replicas !== undefined && (!Number.isInteger(replicas) || replicas < 1 || replicas > 5)) {
      throw new GatewayError('config.invalid', '--replicas: 1-5', { field: 'replicas' });
    }
    const config = { bus: o.bus, stateReplicas: replicas };
    const data = resolve(process.env.MMGW_DATA || './data');
    return { kind: 'cluster', data, servers: stateServers(config), replicas: stateReplicas(config) };
  }
  if (o.data !== undefined) return { kind: 'lmdb', data: resolve(o.data) };
  return registryPlace(o.config === undefined ? {} : { config: o.config });
}

async function withCluster<T>(
  place: Extract<RegistryPlace, { kind: 'cluster' }>,
  fn: (s: NatsKvSharedState) => Promise<T>,
): Promise<T> {
  const state = await connectCluster(place);
  try {
    return await fn(state);
  } finally {
    await state.close();
  }
}

function placeOptions(command: Command): Command {
  return command
    .addOption(new Option('--data <dir>', 'the lmdb registry in this data directory (env MMGW_DATA)'))
    .addOption(
      new Option(
        '--bus <urls>',
        'the registry of a NATS cluster with JetStream: nats://host:port, comma-separated',
      ),
    )
    .addOption(
      new Option('--replicas <n>', 'with --bus: copies of each bucket (default 3 for 3+ servers, else 1)'),
    )
    .addOption(
      new Option(
        '--config <file>',
        'without --data and --bus: the registry this config names (env MMGW_CONFIG, MMGW_BUS, MMGW_DATA), as mmgw device does',
      ),
    );
}

export function registryCommand(
  wrap: (action: (...args: any[]) => Promise<number>) => (...args: any[]) => Promise<void>,
  io: CliIo,
): Command {
  const registry = new Command('registry').description(
    'move a whole registry between lmdb and a NATS cluster',
  );

  placeOptions(registry.command('export'))
    .description('write every registry record as JSON lines on stdout')
    .action(
      wrap(async (o: Where) => {
        const place = where(o);
        io.err(`reading ${describePlace(place)}\n`);
        let n = 0;
        // The header goes out once the registry is open: a registry that cannot be read writes nothing.
        const write = async (records: AsyncIterable<TransferRecord> | Iterable<TransferRecord>) => {
          io.out(exportHeader(Date.now()) + '\n');
          for await (const r of records) {
            io.out(exportLine(r) + '\n');
            n++;
          }
        };
        if (place.kind === 'cluster') await withCluster(place, (state) => write(exportShared(state)));
        else {
          const r = await Registry.open(place.data, { mustExist: true });
          try {
            await write(r.exportRecords());
          } finally {
            await r.close();
          }
        }
        io.err(`exported ${n} records from ${describePlace(place)}\n`);
        return 0;
      }),
    );

  placeOptions(registry.command('import'))
    .description('read an export (--file, else stdin) into lmdb or a NATS cluster; refuses keys that exist')
    .option('--file <path>', 'the export file (default: stdin)')
    .option('--json', 'machine-readable output (one JSON object)')
    .action(
      wrap(async (o: Where & { file?: string }) => {
        const place = where(o);
        io.err(`writing into ${describePlace(place)}\n`);
        const text = o.file !== undefined ? readFileSync(o.file, 'utf8') : await readStdin();
        const records = parseExport(text);
        let written: number;
        if (place.kind === 'cluster') {
          written = (await withCluster(place, (state) => importShared(state, records))).written;
        } else {
          const r = await Registry.open(place.data);
          try {
            written = (await r.importRecords(records)).written;
          } finally {
            await r.close();
          }
        }
        io.out(
          o.json
            ? JSON.stringify({ written, registry: placeJson(place) }) + '\n'
            : `imported ${written} records into ${describePlace(place)}\n`,
        );
        return 0;
      }),
    );
  return registry;
}

/** The registry an import wrote, for --json: the lmdb directory, or the cluster's servers. */
function placeJson(p: RegistryPlace): Record<string, unknown> {
  return p.kind === 'lmdb'
    ? { kind: 'lmdb', path: join(p.data, 'registry') }
    : { kind: 'cluster', servers: p.servers, replicas: p.replicas };
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

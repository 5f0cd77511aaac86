/**
 * `mmgw registry export|import`: a whole registry moved between the
 * single-node lmdb store (`--data DIR`) and a NATS cluster's shared state
 * (`--bus nats://…`), as JSON lines (server/store/registry-transfer.ts).
 *
 *   mmgw registry export --data ./data > registry.jsonl
 *   mmgw registry import --bus nats://n1:4222,nats://n2:4222,nats://n3:4222 --file registry.jsonl
 *
 * An import writes everything or nothing into lmdb (one transaction); into a
 * cluster it is create-if-absent per key and may be run again after a failure.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { Command, Option } from 'commander';
import { GatewayError } from '../../device-protocol/errors.ts';
import { Registry } from '../store/registry.ts';
import {
  exportHeader,
  exportLine,
  exportShared,
  importShared,
  parseExport,
} from '../store/registry-transfer.ts';
import { NatsKvSharedState } from '../store/shared/nats-kv.ts';
import { stateReplicas } from '../store/shared/cluster.ts';
import type { CliIo } from './io.ts';

interface Where {
  data?: string;
  bus?: string;
  replicas?: string;
  json?: boolean;
}

function where(o: Where): { data: string } | { bus: string; replicas: number } {
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
    return { bus: o.bus, replicas: stateReplicas({ bus: o.bus, stateReplicas: replicas }) };
  }
  return { data: resolve(o.data ?? (process.env.MMGW_DATA || './data')) };
}

async function withCluster<T>(
  bus: string,
  replicas: number,
  fn: (s: NatsKvSharedState) => Promise<T>,
): Promise<T> {
  const servers = bus.split(',').map((s) => s.trim());
  const state = await NatsKvSharedState.connect({ servers, replicas, name: 'mmgw-registry-cli' });
  try {
    return await fn(state);
  } finally {
    await state.close();
  }
}

function placeOptions(command: Command): Command {
  return command
    .addOption(
      new Option('--data <dir>', 'lmdb registry in this data directory (env MMGW_DATA; default ./data)'),
    )
    .addOption(
      new Option('--bus <urls>', 'a NATS cluster with JetStream instead: nats://host:port, comma-separated'),
    )
    .addOption(
      new Option('--replicas <n>', 'with --bus: copies of each bucket (default 3 for 3+ servers, else 1)'),
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
        io.out(exportHeader(Date.now()) + '\n');
        let n = 0;
        if ('bus' in place) {
          await withCluster(place.bus, place.replicas, async (state) => {
            for await (const r of exportShared(state)) {
              io.out(exportLine(r) + '\n');
              n++;
            }
          });
        } else {
          const r = await Registry.open(place.data, { mustExist: true });
          try {
            for (const record of r.exportRecords()) {
              io.out(exportLine(record) + '\n');
              n++;
            }
          } finally {
            await r.close();
          }
        }
        io.err(`exported ${n} records\n`);
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
        const text = o.file !== undefined ? readFileSync(o.file, 'utf8') : await readStdin();
        const records = parseExport(text);
        let written: number;
        if ('bus' in place) {
          written = (await withCluster(place.bus, place.replicas, (state) => importShared(state, records)))
            .written;
        } else {
          const r = await Registry.open(place.data);
          try {
            written = (await r.importRecords(records)).written;
          } finally {
            await r.close();
          }
        }
        io.out(o.json ? JSON.stringify({ written }) + '\n' : `imported ${written} records\n`);
        return 0;
      }),
    );
  return registry;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

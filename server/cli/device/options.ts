import { resolve } from 'node:path';
import { type Command, Option } from 'commander';
import { GatewayError } from '../../../device-protocol/errors.ts';
import { imeiProblem } from '../../store/imei.ts';
import { Registry } from '../../store/registry.ts';
import type { CliIo } from '../io.ts';

/** What every `mmgw device …` piece needs from the coordinator (server/cli/device.ts). */

export type Action = (...args: any[]) => Promise<number>;

export interface DeviceCommandHost {
  /** Turns an action's thrown error into the CLI's error output and exit code (server/cli/main.ts). */
  wrap(action: Action): (...args: any[]) => Promise<void>;
  io: CliIo;
}

/** Adds one command or command group to `mmgw device`. */
export type DeviceSubcommand = (device: Command, host: DeviceCommandHost) => void;

export interface DataOptions {
  data: string;
  json?: boolean;
}

function defaultData(): string {
  return process.env.MMGW_DATA || './data';
}

export function dataOption(): Option {
  return new Option('--data <dir>', 'data directory (env MMGW_DATA)').default(
    defaultData(),
    'MMGW_DATA or ./data',
  );
}

export function jsonOption(): Option {
  return new Option('--json', 'machine-readable output (one JSON object)');
}

/** Opens the registry for one command. Only add and import create one where there is none. */
export async function withRegistry<T>(
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

/** A command on one handset: `<imei>` first, then --data and --json like every other. */
export function imeiCommand(parent: Command, name: string): Command {
  return parent.command(name).argument('<imei>').addOption(dataOption()).addOption(jsonOption());
}

export function checkImeiArg(imei: string): void {
  const problem = imeiProblem(imei);
  if (problem) throw new GatewayError('registry.invalid_imei', problem, { field: 'imei' });
}

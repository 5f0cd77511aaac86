import { type Command, Option } from 'commander';
import { GatewayError } from '../../../device-protocol/errors.ts';
import { imeiProblem } from '../../store/imei.ts';
import type { Registry } from '../../store/registry.ts';
import { dataOption, type PlaceOptions, withPlacedRegistry } from '../registry-place.ts';
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

export interface DataOptions extends PlaceOptions {
  json?: boolean;
}

export { dataOption } from '../registry-place.ts';

export function jsonOption(): Option {
  return new Option('--json', 'machine-readable output (one JSON object)');
}

/**
 * Opens the registry for one command (the cluster's when the config says
 * cluster mode: registry-place.ts). Only add and import create an lmdb
 * registry where there is none.
 */
export function withRegistry<T>(
  options: DataOptions,
  fn: (r: Registry) => Promise<T>,
  access: 'read' | 'write' = 'write',
): Promise<T> {
  return withPlacedRegistry(options, fn, access === 'read');
}

/** A command on one handset: `<imei>` first, then --data (and --config, --bus) and --json like every other. */
export function imeiCommand(parent: Command, name: string): Command {
  return parent.command(name).argument('<imei>').addOption(dataOption()).addOption(jsonOption());
}

export function checkImeiArg(imei: string): void {
  const problem = imeiProblem(imei);
  if (problem) throw new GatewayError('registry.invalid_imei', problem, { field: 'imei' });
}

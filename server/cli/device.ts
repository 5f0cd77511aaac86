import { Command } from 'commander';
import { addAccountCommands } from './device/accounts.ts';
import { addExportCommand } from './device/export.ts';
import { addHandsetCommands } from './device/handsets.ts';
import { addImportCommand } from './device/import.ts';
import { addImportJobCommands } from './device/import-jobs.ts';
import type { Action, DeviceCommandHost } from './device/options.ts';
import { type CliIo, processIo } from './io.ts';
import { withPlaceOptions } from './registry-place.ts';

/**
 * `mmgw device …`: provisioning from a shell. Works on the data directory
 * directly, whether or not a gateway runs on it (lmdb is multi-process safe;
 * a running gateway sees a change on its next read), or, when the config
 * says cluster mode, on the cluster's registry (registry-place.ts). Every change is audited
 * like one made through the API, as `cli:<os user>` (cliActor): the registry
 * writes the entry in the change's own transaction, and the admin role moves
 * it to the audit log.
 *
 * Each command group is a piece under device/ that gets only `wrap` and the
 * io (DeviceCommandHost); this file puts them together in help order.
 */

export { type CliIo, cliActor, processIo } from './io.ts';

/**
 * Builds `mmgw device`. `wrap` turns an action's thrown error into the CLI's
 * error output and exit code (server/cli/main.ts).
 */
export function deviceCommand(
  wrap: (action: Action) => (...args: any[]) => Promise<void>,
  io: CliIo = processIo,
): Command {
  const device = new Command('device').description('provision and manage handsets in the registry');
  const host: DeviceCommandHost = { wrap, io };
  addHandsetCommands(device, host);
  addAccountCommands(device, host);
  addExportCommand(device, host);
  addImportCommand(device, host);
  addImportJobCommands(device, host);
  return withPlaceOptions(device);
}

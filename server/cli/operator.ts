import { Command } from 'commander';
import { z } from 'zod';
import { GatewayError } from '../../device-protocol/errors.ts';
import { refAuditView } from '../store/ref-store.ts';
import type { Registry } from '../store/registry.ts';
import { cliActor, type CliIo } from './io.ts';
import { withPlaceOptions } from './registry-place.ts';
import {
  type Action,
  type DataOptions,
  type DeviceSubcommand,
  dataOption,
  jsonOption,
  withRegistry,
} from './device/options.ts';

/**
 * `mmgw operator add|list`: the operators (tenants) handsets belong to, from a
 * shell, so that a first `mmgw device add --operator X` needs no API token.
 * The same records as the API's /operators, audited as `cli:<os user>`; the
 * other reference data (profiles, services) is the API's and the web UI's.
 */

const OperatorInput = z.object({
  id: z.string().regex(/^[A-Za-z0-9._:@-]{1,64}$/, { error: 'use 1-64 letters, digits or . _ : @ -' }),
  name: z.string().min(1, { error: 'a name is needed' }).max(200),
});

/** A device's operator must exist, as the API checks (a service profile is checked by the API only, for now). */
export function checkDeviceOperator(registry: Registry, operator: string): void {
  if (registry.getRef('operators', operator) === undefined)
    throw new GatewayError(
      'registry.invalid_field',
      `operator ${operator} is not defined: add it first with \`mmgw operator add ${operator} --name …\``,
      { field: 'operator' },
    );
}

export const addOperatorCommands: DeviceSubcommand = (parent, { wrap, io }) => {
  parent
    .command('add')
    .description('add an operator (tenant) for handsets to belong to')
    .argument('<id>', '1-64 letters, digits or . _ : @ -')
    .option('--name <name>', 'display name (default: the id)')
    .addOption(dataOption())
    .addOption(jsonOption())
    .action(
      wrap(async (id: string, o: DataOptions & { name?: string }) => {
        const parsed = OperatorInput.safeParse({ id, name: o.name ?? id });
        if (!parsed.success) {
          const issue = parsed.error.issues[0];
          const field = String(issue?.path[0] ?? 'id');
          throw new GatewayError('request.bad_input', `${field}: ${issue?.message}`, { field });
        }
        const r = await withRegistry(o, (reg) =>
          reg.putRef('operators', id, { name: parsed.data.name }, { mode: 'create' }, cliActor()),
        );
        if (!r) throw new GatewayError('internal');
        io.out(o.json ? `${JSON.stringify(refAuditView(r.after))}\n` : `added operator ${id}\n`);
        return 0;
      }),
    );

  parent
    .command('list')
    .description('list the operators')
    .addOption(dataOption())
    .addOption(jsonOption())
    .action(
      wrap(async (o: DataOptions) => {
        const items = await withRegistry(o, async (r) => r.listRefs('operators'), 'read');
        if (o.json) io.out(`${JSON.stringify({ items: items.map(refAuditView) })}\n`);
        else if (items.length === 0) io.out('no operators\n');
        else for (const r of items) io.out(`${r.id.padEnd(24)} ${String(r.data.name ?? '')}\n`);
        return 0;
      }),
    );
};

export function operatorCommand(
  wrap: (action: Action) => (...args: any[]) => Promise<void>,
  io: CliIo,
): Command {
  const operator = new Command('operator').description('operators (tenants) the handsets belong to');
  addOperatorCommands(operator, { wrap, io });
  return withPlaceOptions(operator);
}

import { Option } from 'commander';
import { GatewayError } from '../../../device-protocol/errors.ts';
import type { DeviceStatus } from '../../store/records.ts';
import { cliActor } from '../io.ts';
import { checkDeviceOperator } from '../operator.ts';
import {
  checkImeiArg,
  type DataOptions,
  type DeviceSubcommand,
  imeiCommand,
  dataOption,
  jsonOption,
  withRegistry,
} from './options.ts';
import { describeDevice, deviceTable, secretNotice } from './output.ts';

/** `mmgw device add|list|show|enable|disable|remove|reset-secret`: one handset's record at a time. */

export interface ListOptions {
  operator?: string;
  status?: DeviceStatus;
  prefix?: string;
  limit: string;
  after?: string;
}

/** The page size `list` asks for, after checking its flags (they come from a shell, unchecked). */
export function listLimit(o: ListOptions): number {
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
  return limit;
}

export const addHandsetCommands: DeviceSubcommand = (device, { wrap, io }) => {
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
        const { device: d, secret } = await withRegistry(o, (r) => {
          checkImeiArg(o.imei);
          checkDeviceOperator(r, o.operator);
          return r.addDevice(
            {
              imei: o.imei,
              operator: o.operator,
              ...(o.imsi ? { imsi: o.imsi } : {}),
              ...(o.profile ? { profile: o.profile } : {}),
            },
            cliActor(),
          );
        });
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
      wrap(async (o: DataOptions & ListOptions) => {
        const limit = listLimit(o);
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
          io.out(page.length === 0 ? 'no devices\n' : deviceTable(page));
          if (next) io.err(`more: --after ${next}\n`);
        }
        return 0;
      }),
    );

  imeiCommand(device, 'show')
    .description('one handset')
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
    imeiCommand(device, name)
      .description(
        name === 'disable'
          ? 'refuse the handset from now on (its live session is refused at its next auth)'
          : 'allow the handset again',
      )
      .action(
        wrap(async (imei: string, o: DataOptions) => {
          checkImeiArg(imei);
          const d = await withRegistry(o, (r) => r.setStatus(imei, status, cliActor()), 'read');
          io.out(o.json ? JSON.stringify({ device: d }) + '\n' : `${imei}: ${d.status}\n`);
          return 0;
        }),
      );
  }

  imeiCommand(device, 'remove')
    .description('delete the handset from the registry')
    .action(
      wrap(async (imei: string, o: DataOptions) => {
        checkImeiArg(imei);
        await withRegistry(o, (r) => r.removeDevice(imei, cliActor()), 'read');
        io.out(o.json ? JSON.stringify({ removed: imei }) + '\n' : `removed ${imei}\n`);
        return 0;
      }),
    );

  imeiCommand(device, 'reset-secret')
    .description('replace the handset secret (the old one stops working); prints the new one once')
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
};

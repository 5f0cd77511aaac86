/**
 * `mmgw admin user add|list|role|remove|password`: admin users of the REST API
 * and web UI, written straight into the registry (works whether or not a
 * gateway runs on the data directory; on a cluster, the cluster's registry:
 * registry-place.ts), each change audited as `cli:<os user>`. The password comes from a prompt (not echoed) or, with
 * --password-stdin, from the first line of stdin; never from a flag, where it
 * would land in the shell history and the process list.
 */
import { Command, Option } from 'commander';
import { GatewayError } from '../../device-protocol/errors.ts';
import type { AdminRole } from '../store/records.ts';
import { adminPasswordProblem } from '../store/secrets.ts';
import { type CliIo, cliActor, processIo } from './io.ts';
import { dataOption, type PlaceOptions, withPlacedRegistry, withPlaceOptions } from './registry-place.ts';

type Action = (...args: any[]) => Promise<number>;

type DataOptions = PlaceOptions & { json?: boolean };

/** Reads all of stdin; the password is its first line. */
export async function passwordFromStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8').split(/\r?\n/)[0] ?? '';
}

/** Prompts on the terminal without echo. */
export async function promptPassword(question: string): Promise<string> {
  const stdin = process.stdin;
  if (!stdin.isTTY) {
    throw new GatewayError('request.bad_input', 'no terminal to prompt on: use --password-stdin', {
      field: 'password',
    });
  }
  // Echo goes off before the question shows, so nothing typed at once is echoed.
  stdin.setRawMode(true);
  process.stderr.write(question);
  stdin.resume();
  stdin.setEncoding('utf8');
  return new Promise<string>((done, fail) => {
    let value = '';
    const onData = (s: string) => {
      for (const ch of s) {
        if (ch === '\r' || ch === '\n') {
          cleanup();
          process.stderr.write('\n');
          return done(value);
        }
        if (ch === '\u0003') {
          cleanup();
          return fail(new GatewayError('request.bad_input', 'cancelled'));
        }
        if (ch === '\u007f') value = value.slice(0, -1);
        else value += ch;
      }
    };
    const cleanup = () => {
      stdin.off('data', onData);
      stdin.setRawMode(false);
      stdin.pause();
    };
    stdin.on('data', onData);
  });
}

export function adminCommand(
  wrap: (action: Action) => (...args: any[]) => Promise<void>,
  io: CliIo = processIo,
): Command {
  const admin = new Command('admin').description('administration of the gateway');
  const user = admin.command('user').description('admin users of the REST API and web UI');

  user
    .command('add')
    .description('add an admin user (password from a prompt, or stdin with --password-stdin)')
    .requiredOption('--name <name>', '1-64 letters, digits or . _ @ -')
    .addOption(
      new Option(
        '--role <role>',
        'admin: changes anything; operator: manages devices; viewer: reports and monitor',
      )
        .choices(['admin', 'operator', 'viewer'])
        .makeOptionMandatory(),
    )
    .option('--password-stdin', 'read the password from the first line of stdin')
    .addOption(dataOption())
    .option('--json', 'machine-readable output')
    .action(
      wrap(async (o: DataOptions & { name: string; role: AdminRole; passwordStdin?: boolean }) => {
        let password: string;
        if (o.passwordStdin) password = await passwordFromStdin();
        else {
          // Asked once, like `admin user password` (a mistyped one is set again with that command),
          // and checked at once, before the registry is opened.
          password = await promptPassword(`password for ${o.name}: `);
          const problem = adminPasswordProblem(password);
          if (problem)
            throw new GatewayError('registry.invalid_field', `password: ${problem}`, { field: 'password' });
        }
        const added = await withPlacedRegistry(o, (r) =>
          r.addAdminUser({ name: o.name, role: o.role, password }, cliActor()),
        );
        io.out(o.json ? `${JSON.stringify(added)}\n` : `added ${added.role} ${added.name}\n`);
        return 0;
      }),
    );

  user
    .command('list')
    .description('list admin users')
    .addOption(dataOption())
    .option('--json', 'machine-readable output')
    .action(
      wrap(async (o: DataOptions) => {
        const users = await withPlacedRegistry(o, async (r) => r.listAdminUsers(), true);
        if (o.json) io.out(`${JSON.stringify({ items: users })}\n`);
        else
          for (const u of users)
            io.out(`${u.name.padEnd(24)} ${u.role.padEnd(8)} ${new Date(u.createdAt).toISOString()}\n`);
        return 0;
      }),
    );

  user
    .command('role')
    .description('give an admin user another role (their tokens stop working: they log in again)')
    .requiredOption('--name <name>')
    .addOption(new Option('--role <role>').choices(['admin', 'operator', 'viewer']).makeOptionMandatory())
    .addOption(dataOption())
    .option('--json', 'machine-readable output')
    .action(
      wrap(async (o: DataOptions & { name: string; role: AdminRole }) => {
        const { after } = await withPlacedRegistry(
          o,
          (r) => r.setAdminRole(o.name, o.role, cliActor()),
          true,
        );
        io.out(o.json ? `${JSON.stringify(after)}\n` : `${after.name} is now ${after.role}\n`);
        return 0;
      }),
    );

  user
    .command('password')
    .description("set a user's password (prompt, or stdin with --password-stdin); their tokens stop working")
    .requiredOption('--name <name>')
    .option('--password-stdin', 'read the password from the first line of stdin')
    .addOption(dataOption())
    .option('--json', 'machine-readable output')
    .action(
      wrap(async (o: DataOptions & { name: string; passwordStdin?: boolean }) => {
        const password = o.passwordStdin
          ? await passwordFromStdin()
          : await promptPassword(`new password for ${o.name}: `);
        await withPlacedRegistry(o, (r) => r.setAdminPassword(o.name, password, cliActor()), true);
        io.out(o.json ? `${JSON.stringify({ name: o.name, ok: true })}\n` : `password of ${o.name} set\n`);
        return 0;
      }),
    );

  user
    .command('remove')
    .description('remove an admin user (their tokens stop working at once)')
    .requiredOption('--name <name>')
    .addOption(dataOption())
    .option('--json', 'machine-readable output')
    .action(
      wrap(async (o: DataOptions & { name: string }) => {
        await withPlacedRegistry(o, (r) => r.removeAdminUser(o.name, cliActor()), true);
        io.out(o.json ? `${JSON.stringify({ removed: o.name })}\n` : `removed ${o.name}\n`);
        return 0;
      }),
    );
  return withPlaceOptions(admin);
}

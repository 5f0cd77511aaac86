import type { Command } from 'commander';
import { type ProvisionedAccount, setDeviceAccount } from '../../store/device-profile.ts';
import { CredentialCipher } from '../../transport/credentials.ts';
import { passwordFromStdin, promptPassword } from '../admin.ts';
import { cliActor } from '../io.ts';
import { registryPlace } from '../registry-place.ts';
import {
  checkImeiArg,
  type DataOptions,
  type DeviceCommandHost,
  imeiCommand,
  dataOption,
  jsonOption,
  withRegistry,
} from './options.ts';
import { iso } from './output.ts';

/**
 * `mmgw device account set|list|remove`: provisioned accounts, the
 * credentials for the presets of the handset's service profile.
 */

/** An account as the CLI shows it: never its sealed password. */
export function accountJson(a: ProvisionedAccount): Omit<ProvisionedAccount, 'secret'> {
  const { secret: _secret, ...rest } = a;
  return rest;
}

export interface AccountCommandHost extends DeviceCommandHost {
  /** Reads the account's password: from stdin's first line, or a prompt (tests answer it). */
  password?(fromStdin: boolean, prompt: string): Promise<string>;
}

function readPassword(fromStdin: boolean, prompt: string): Promise<string> {
  return fromStdin ? passwordFromStdin() : promptPassword(prompt);
}

export function addAccountCommands(device: Command, host: AccountCommandHost): void {
  const { wrap, io } = host;
  const askPassword = host.password ?? readPassword;
  const account = device
    .command('account')
    .description(
      "accounts provisioned for the presets of a handset's service profile (brought up by the transport)",
    );
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
          const password = await askPassword(o.passwordStdin ?? false, `password for ${label} of ${imei}: `);
          // The key the transport opens it with: the config's credentialsKey (MMGW_CREDENTIALS_KEY),
          // else <data>/keys/credentials.key.
          const place = registryPlace(o);
          const cipher = CredentialCipher.open({ dataDir: place.data, key: place.credentialsKey });
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

  imeiCommand(account, 'list')
    .description("a handset's provisioned accounts (never the passwords)")
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

  imeiCommand(account, 'remove')
    .description('remove a provisioned account (the transport drops it at the next connect)')
    .argument('<label>')
    .action(
      wrap(async (imei: string, label: string, o: DataOptions) => {
        checkImeiArg(imei);
        await withRegistry(o, (r) => r.removeDeviceAccount(imei, label, cliActor()), 'read');
        io.out(o.json ? JSON.stringify({ removed: label }) + '\n' : `${imei}: removed account ${label}\n`);
        return 0;
      }),
    );
}

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { runCliPiece, tempDir } from '../../../testing/index.ts';
import { CredentialCipher } from '../../transport/credentials.ts';
import { addAccountCommands } from './accounts.ts';
import { withRegistry } from './options.ts';

const IMEI = '356938035643809';

/** A handset whose service profile offers one mail preset, Corp. */
function deviceWithCorpProfile(data: string): Promise<unknown> {
  return withRegistry({ data }, async (r) => {
    await r.putRef(
      'service-profiles',
      'corp',
      {
        services: ['mail'],
        accounts: [{ service: 'mail', label: 'Corp', imapHost: 'imap.corp', smtpHost: 'smtp.corp' }],
      },
      { mode: 'create' },
    );
    return r.addDevice({ imei: IMEI, operator: 'acme', profile: 'corp' });
  });
}

test('account set seals the password it is given; list and remove never show it', async (t) => {
  const data = join(tempDir(t), 'data');
  await deviceWithCorpProfile(data);
  const asked: Array<[boolean, string]> = [];
  const run = (...args: string[]) =>
    runCliPiece(
      (parent, host) =>
        addAccountCommands(parent, {
          ...host,
          password: async (fromStdin, prompt) => {
            asked.push([fromStdin, prompt]);
            return 'correct horse';
          },
        }),
      ['account', ...args, '--data', data],
    );

  const set = await run('set', IMEI, 'Corp', '--address', 'alice@corp', '--json');
  assert.deepEqual(asked, [[false, `password for Corp of ${IMEI}: `]]);
  const { account, created } = JSON.parse(set.stdout);
  assert.equal(created, true);
  assert.equal(account.user, 'alice@corp');
  assert.equal(account.secret, undefined);
  const sealed = await withRegistry({ data }, async (r) => r.getDeviceAccount(IMEI, 'Corp')?.secret, 'read');
  assert.ok(sealed && !sealed.includes('correct horse'));

  assert.match(
    (await run('set', IMEI, 'Corp', '--address', 'bob@corp', '--password-stdin')).stdout,
    /updated mail account Corp \(bob@corp\)/,
  );
  assert.deepEqual(asked[1], [true, `password for Corp of ${IMEI}: `]);
  assert.match((await run('list', IMEI)).stdout, /^Corp\tmail\tbob@corp\t\d{4}-/);
  assert.equal((await run('remove', IMEI, 'Corp')).stdout, `${IMEI}: removed account Corp\n`);
  assert.equal((await run('list', IMEI)).stdout, 'no accounts\n');
  await assert.rejects(run('set', IMEI, 'Home', '--address', 'a@b'), { code: 'service.unknown_preset' });
});

test('the sealed password opens with the data directory key, in the context of its device and label', async (t) => {
  const data = join(tempDir(t), 'data');
  await deviceWithCorpProfile(data);
  await runCliPiece(
    (parent, host) => addAccountCommands(parent, { ...host, password: async () => 'pw-1' }),
    ['account', 'set', IMEI, 'Corp', '--address', 'a@corp', '--data', data],
  );
  const sealed = await withRegistry({ data }, async (r) => r.getDeviceAccount(IMEI, 'Corp')?.secret, 'read');
  const cipher = CredentialCipher.open({ dataDir: data, key: process.env.MMGW_CREDENTIALS_KEY });
  assert.equal(cipher.decrypt(sealed ?? '', `provisioned:${IMEI}:Corp`), 'pw-1');
});

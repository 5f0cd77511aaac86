import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { GatewayError } from '../../../device-protocol/errors.ts';
import { loadApnsKey, loadServiceAccount } from './settings.ts';

const dir = mkdtempSync(join(tmpdir(), 'mmgw-push-settings-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function pem(type: 'rsa' | 'ec', namedCurve = 'prime256v1'): string {
  const { privateKey } =
    type === 'rsa'
      ? generateKeyPairSync('rsa', { modulusLength: 1024 })
      : generateKeyPairSync('ec', { namedCurve });
  return String(privateKey.export({ type: 'pkcs8', format: 'pem' }));
}

function write(name: string, text: string): string {
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
}

const refusal = (message: RegExp) => (err: unknown) =>
  err instanceof GatewayError && err.code === 'config.invalid' && message.test(err.message);

test('a service account file: the fields FCM needs, an RSA key; anything else stops the start naming the field', () => {
  const account = {
    type: 'service_account',
    project_id: 'mmgw-demo',
    client_email: 'wake@mmgw-demo.iam.gserviceaccount.com',
    private_key: pem('rsa'),
    token_uri: 'https://oauth2.googleapis.com/token',
  };
  const good = write('good.json', JSON.stringify(account));
  assert.equal(loadServiceAccount(good).client_email, account.client_email);
  assert.throws(
    () => loadServiceAccount(join(dir, 'absent.json')),
    refusal(/serviceAccountFile: cannot read .*ENOENT/),
  );
  assert.throws(() => loadServiceAccount(write('text.json', 'not json')), refusal(/is not JSON/));
  assert.throws(
    () =>
      loadServiceAccount(write('http.json', JSON.stringify({ ...account, token_uri: 'http://x.example/t' }))),
    refusal(/token_uri: expected an https:\/\/ URL/),
  );
  assert.throws(
    () => loadServiceAccount(write('no-email.json', JSON.stringify({ ...account, client_email: undefined }))),
    refusal(/client_email/),
  );
  assert.throws(
    () =>
      loadServiceAccount(
        write('ec.json', JSON.stringify({ ...account, private_key: pem('ec', 'prime256v1') })),
      ),
    refusal(/private_key: expected an RSA private key/),
  );
});

test('an APNs key file: a P-256 private key in PEM, else the start stops', () => {
  const p8 = pem('ec', 'prime256v1');
  assert.equal(loadApnsKey(write('AuthKey.p8', p8)), p8);
  assert.throws(
    () => loadApnsKey(write('rsa.p8', pem('rsa'))),
    refusal(/keyFile: .*expected a P-256 private key/),
  );
  assert.throws(() => loadApnsKey(write('p384.p8', pem('ec', 'secp384r1'))), refusal(/P-256/));
  assert.throws(() => loadApnsKey(write('junk.p8', 'junk')), refusal(/P-256/));
  assert.throws(() => loadApnsKey(join(dir, 'absent.p8')), refusal(/cannot read/));
});

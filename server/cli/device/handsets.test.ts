import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { runCliPiece, tempDir } from '../../../testing/index.ts';
import { addOperatorCommands } from '../operator.ts';
import { addHandsetCommands, listLimit } from './handsets.ts';

const IMEI = '356938035643809';
const OTHER = '490154203237518';

test('list checks its page size and prefix before it opens anything', () => {
  assert.equal(listLimit({ limit: '20' }), 20);
  assert.throws(() => listLimit({ limit: '0' }), { code: 'request.bad_input', message: /--limit/ });
  assert.throws(() => listLimit({ limit: '2.5' }), { code: 'request.bad_input' });
  assert.throws(() => listLimit({ limit: '5', prefix: '35x' }), {
    code: 'request.bad_input',
    message: /--prefix/,
  });
});

test('add prints the secret once; list pages; show, disable, reset-secret and remove act on one handset', async (t) => {
  const data = join(tempDir(t), 'data');
  const run = (...args: string[]) => runCliPiece(addHandsetCommands, [...args, '--data', data]);
  // Only an operator that exists, as with the API.
  await assert.rejects(run('add', '--imei', IMEI, '--operator', 'acme'), {
    code: 'registry.invalid_field',
    field: 'operator',
    message: /operator acme is not defined/,
  });
  // A bad IMEI is said first, whatever the operator.
  await assert.rejects(run('add', '--imei', '356938035643808', '--operator', 'acme'), {
    code: 'registry.invalid_imei',
  });
  assert.equal((await runCliPiece(addOperatorCommands, ['add', 'acme', '--data', data])).code, 0);
  const added = await run('add', '--imei', IMEI, '--operator', 'acme', '--json');
  assert.equal(added.code, 0);
  const { device, secret } = JSON.parse(added.stdout);
  assert.equal(device.imei, IMEI);
  assert.match(secret, /\S{16,}/);
  assert.match(
    (await run('add', '--imei', OTHER, '--operator', 'acme')).stdout,
    /^secret {4}\S+\n\(shown only this once/m,
  );

  const first = await run('list', '--limit', '1');
  assert.match(first.stdout, /^IMEI .*\n356938035643809 /);
  assert.equal(first.stderr, `more: --after ${IMEI}\n`);
  const rest = JSON.parse((await run('list', '--after', IMEI, '--json')).stdout);
  assert.deepEqual(
    rest.devices.map((d: { imei: string }) => d.imei),
    [OTHER],
  );
  assert.equal(rest.next, undefined);

  assert.match((await run('show', IMEI)).stdout, /^operator {3}acme$/m);
  assert.equal((await run('disable', IMEI)).stdout, `${IMEI}: disabled\n`);
  const reset = JSON.parse((await run('reset-secret', IMEI, '--json')).stdout);
  assert.notEqual(reset.secret, secret);
  assert.equal(reset.device.status, 'disabled');
  assert.equal((await run('remove', IMEI)).stdout, `removed ${IMEI}\n`);
  await assert.rejects(run('show', IMEI), { code: 'registry.not_found' });
  await assert.rejects(run('show', '123'), { code: 'registry.invalid_imei' });
});

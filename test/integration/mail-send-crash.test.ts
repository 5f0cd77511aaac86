/**
 * kill -9 between the SMTP 250 and the copy to Sent (issue #11): the mail
 * was taken, the node died, the device resends with the same clientId. The
 * durable sent mark (written right after the 250) makes the resend a
 * `duplicate`: the SMTP peer took the mail once. Before it, the resend found
 * no copy in Sent and sent the mail a second time.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { ALICE, BOB, FIXTURE_CREDENTIALS_KEY, type MailFixture, startMailFixture } from './mail-fixture.ts';

const CHILD = fileURLToPath(new URL('./mail-send-crash-child.ts', import.meta.url));

let fx: MailFixture;
before(async () => {
  fx = await startMailFixture();
});
after(() => fx?.stop());

test('a resend after a kill -9 between the 250 and the Sent copy is a duplicate, sent once', async () => {
  const account = await fx.addAccount('dev-crash', ALICE);
  // The child has the data directory to itself, as a node that restarts would.
  await fx.service.close();
  const body = { account, to: [BOB.user], subject: 'once', text: 'only once, please', clientId: 'crash-1' };
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', CHILD, fx.dataDir, 'dev-crash', JSON.stringify(body)],
    {
      env: { ...process.env, MMGW_CREDENTIALS_KEY: FIXTURE_CREDENTIALS_KEY },
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const [code, signal] = await once(child, 'exit');
  assert.equal(signal, 'SIGKILL', `the child ended with code ${code}: ${stderr}`);
  assert.equal(fx.smtp.accepted.length, 1, 'the SMTP peer took the mail before the kill');

  await fx.restartService();
  const again = await fx.call('dev-crash', 'mail.send', body);
  assert.equal(again.duplicate, true);
  assert.equal(again.clientId, 'crash-1');
  assert.match(again.messageId, /^<crash-1\./);
  assert.equal(fx.smtp.accepted.length, 1, 'the resend sent nothing');
  // No copy in Sent (the kill came first): the mark, not the Sent search, answered.
  const sent = await fx.call('dev-crash', 'mail.sync', { account, folder: 'Sent', limit: 10 });
  assert.equal(sent.items.length, 0);
  // Another clientId is another mail.
  const other = await fx.call('dev-crash', 'mail.send', { ...body, clientId: 'crash-2' });
  assert.equal(other.sentCopy, true);
  assert.equal(fx.smtp.accepted.length, 2);
});

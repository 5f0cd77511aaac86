/**
 * backend_failing end to end: a device's mail requests fail against a
 * stopped Dovecot (each a backend_error record, edge → transport → admin),
 * the alarm is raised for the device once the threshold is reached, and
 * cleared when Dovecot is back and a request of the same account succeeds.
 * The single-node history (lmdb) keeps both, across a restart of the gateway.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { eventually } from '../../testing/index.ts';
import { type DovecotServer, startDovecot } from '../harness/dovecot.ts';
import { startGateway } from '../harness/gateway.ts';
import { ADMIN, ApiClient, WAIT } from './admin-api-helpers.ts';
import { ALICE, BOB, mailAccountBody, startMailGatewayRig } from './mail-fixture.ts';

interface AlarmView {
  kind: string;
  subject: string;
  active: boolean;
  message: string;
}

test('a device failing against a stopped Dovecot raises backend_failing; Dovecot back clears it; the history survives a restart', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mmgw-alarms-backend-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const configFile = join(dir, 'mmgw.json');
  writeFileSync(
    configFile,
    JSON.stringify({ alarms: { backendFailing: { windowMs: 120_000, perDevice: 3 } } }),
  );
  const env = { MMGW_CONFIG: configFile, MMGW_ADMIN_NAME: ADMIN.name, MMGW_ADMIN_PASSWORD: ADMIN.password };
  const rig = await startMailGatewayRig({ gateway: { env } });
  t.after(() => rig.stop());
  const h = await rig.device();
  const account = (
    (await h.request<{ account: string }>(
      'mail.account.add',
      mailAccountBody(rig.dovecot, rig.smtp, ALICE),
    )) as { account: string }
  ).account;
  await h.request('mail.sync', { account, folder: 'INBOX', limit: 10 });
  const api = await ApiClient.as(rig.gw.adminUrl, ADMIN.name, ADMIN.password);
  const alarms = async () => (await api.call('GET', '/alarms')).json.items as AlarmView[];

  // Dovecot stops (its mailboxes kept): every request of the device fails.
  const { imapPort, dir: mailDir } = rig.dovecot;
  await rig.dovecot.stop();
  const raised = await eventually(
    'backend_failing raised for the device',
    async () => {
      await h.request('mail.sync', { account, folder: 'INBOX', limit: 10 }).catch(() => undefined);
      return (await alarms()).find((a) => a.kind === 'backend_failing' && a.active);
    },
    WAIT,
  );
  assert.match(raised.subject, /^device:\d{15}:mail$/);
  assert.match(raised.message, /failed backend requests/);

  // Dovecot back on the same port and mailboxes: a successful request clears it.
  let dovecot: DovecotServer | undefined = await startDovecot({
    users: [ALICE, BOB],
    dir: mailDir,
    port: imapPort,
  });
  t.after(() => dovecot?.stop());
  await eventually(
    'cleared once a request succeeds',
    async () => {
      await h.request('mail.sync', { account, folder: 'INBOX', limit: 10 }).catch(() => undefined);
      const a = (await alarms()).find((x) => x.subject === raised.subject);
      return a !== undefined && !a.active;
    },
    WAIT,
  );

  // The gateway restarts: the history (lmdb, single node) still has the raise and the clear.
  await h.close();
  await rig.gw.stop();
  const gw2 = await startGateway({ dataDir: rig.dataDir, env });
  t.after(() => gw2.stop());
  const api2 = await ApiClient.as(gw2.adminUrl, ADMIN.name, ADMIN.password);
  const history = (await api2.call('GET', '/alarms/history')).json.items as Array<{
    subject: string;
    state: string;
  }>;
  assert.deepEqual(
    history.filter((e) => e.subject === raised.subject).map((e) => e.state),
    ['cleared', 'raised'],
  );
  await gw2.stop();
  await dovecot.stop();
  dovecot = undefined;
});

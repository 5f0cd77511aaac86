/**
 * `mmgw start` with its transport in a supervised child process (issue #12):
 * the child is killed -9 while mail arrives; the supervisor starts another,
 * the edge (in the primary) keeps the device's session, and the new child's
 * INBOX watchers come back from their marks: every mail pushed once, and the
 * device never syncs again. The node view (GET /api/v1/nodes) shows the
 * devices and accounts the transport serves, which the child reports to its
 * primary for the heartbeat.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { Handset } from '../../device-protocol/handset.ts';
import { eventually } from '../../testing/index.ts';
import { type DovecotServer, startDovecot } from '../harness/dovecot.ts';
import { type Gateway, provisionDevice, readyRecords, startGateway } from '../harness/gateway.ts';
import { type SmtpPeer, startSmtpPeer } from '../harness/smtp-peer.ts';
import { ADMIN, ApiClient } from './admin-api-helpers.ts';
import { handsetFor, requestWhenAvailable, WAIT } from './e2e-suite.ts';
import { BOB, InboxArrivals, WatchMarkReader } from './mail-fixture.ts';

/** A child restart and its IMAP reconnect on a loaded machine: generous, nothing asserts on time. */
const BACK = { timeoutMs: 120_000, intervalMs: 100 };

let dovecot: DovecotServer;
let smtp: SmtpPeer;
let gw: Gateway;
let handset: Handset;
let deviceId: string;

before(async () => {
  dovecot = await startDovecot({ users: [BOB] });
  smtp = await startSmtpPeer({ dovecot, starttls: false });
  gw = await startGateway({
    supervise: true,
    // The primary's log names each transport process it starts (readyRecords).
    env: { MMGW_ADMIN_NAME: ADMIN.name, MMGW_ADMIN_PASSWORD: ADMIN.password, MMGW_LOG_LEVEL: 'info' },
  });
  const device = await provisionDevice(gw.dataDir);
  deviceId = device.imei;
  handset = handsetFor(gw, device);
  await handset.connect();
});
after(async () => {
  await handset?.close().catch(() => {});
  await gw?.stop();
  await smtp?.stop();
  await dovecot?.stop({ removeDir: true });
});

test('the supervised transport killed -9 while mail arrives: every mail pushed once, no sync', async () => {
  const server = (port: number) => ({
    host: '127.0.0.1',
    port,
    tls: 'none',
    user: BOB.user,
    password: BOB.password,
  });
  const added = await requestWhenAvailable<any>(handset, 'mail.account.add', {
    address: BOB.user,
    imap: server(dovecot.imapPort),
    smtp: server(smtp.port),
  });
  const account = added.account as string;
  const arrivals = new InboxArrivals(dovecot, BOB.user, handset, account);
  await requestWhenAvailable(handset, 'mail.sync', { account, folder: 'INBOX', limit: 10 });
  const marks = new WatchMarkReader(gw.dataDir);
  try {
    const up = await arrivals.arrive('up');
    await eventually('the first mail pushed', () => arrivals.pushed('up'), WAIT);
    await eventually('its mark written', () => (marks.uid(deviceId, account) ?? 0) >= up, WAIT);
  } finally {
    await marks.close();
  }

  const victim = readyRecords(gw, 'transport').at(-1)?.pid;
  assert.ok(victim, 'the transport child is up');
  process.kill(victim, 'SIGKILL');
  for (const s of ['down-0', 'down-1', 'down-2']) await arrivals.arrive(s);
  await eventually(
    'a new transport child',
    () => readyRecords(gw, 'transport').some((r) => r.pid !== victim),
    BACK,
  );
  await arrivals.arrive('back-0');
  await arrivals.assertEachPushedOnce(BACK);
});

test('the node view shows the devices and accounts the supervised transport serves', async () => {
  const api = await ApiClient.as(gw.adminUrl, ADMIN.name, ADMIN.password);
  const node = await eventually(
    'served counts in the node view',
    async () => {
      const r = await api.call('GET', '/nodes');
      const me = (r.json?.items as any[] | undefined)?.find((n) => n.nodeId === gw.nodeId);
      return me?.served?.mailAccounts === 1 ? me : undefined;
    },
    { ...WAIT, intervalMs: 200 },
  );
  assert.deepEqual(node.served, { devices: 1, mailAccounts: 1, imAccounts: 0 });
});

/**
 * mail.send across a transport failure, over NATS with the edge and the
 * transport (+ admin) in separate processes: the transport process is killed
 * (SIGKILL) while the SMTP transaction is under way, comes back on the same
 * data directory, and the device resends with the same clientId. The stored
 * account keeps working without a new mail.account.add, and the recipient has
 * exactly one copy.
 *
 * To land the kill inside the SMTP transaction every time, the account's SMTP
 * server is a small relay in front of the SMTP peer that holds the message
 * data of the first attempt: the kill comes while the peer still waits for the
 * final dot, so that attempt can never be delivered.
 *
 * Issue #12, on the same pair of processes:
 * - kill -9 of the transport while mail arrives: once it is back, every new
 *   mail is pushed exactly once, and the device never syncs again (the INBOX
 *   watchers come back from their marks when the edge announces the session);
 * - the transport killed after the SMTP 250 and before its answer (a relay in
 *   front of Dovecot holds the APPEND to Sent that follows the 250): the
 *   resend is answered like the first, `duplicate: true`, and sent once.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { GatewayError } from '../../device-protocol/errors.ts';
import type { Handset } from '../../device-protocol/handset.ts';
import { eventually } from '../../testing/index.ts';
import { type DovecotServer, startDovecot } from '../harness/dovecot.ts';
import { type Gateway, provisionDevice, startGateway, waitReady } from '../harness/gateway.ts';
import { HoldingRelay } from '../harness/holding-relay.ts';
import { type NatsServerHandle, startNatsServer } from '../harness/nats.ts';
import { type SmtpPeer, startSmtpPeer } from '../harness/smtp-peer.ts';
import { handsetFor, requestWhenAvailable, WAIT } from './e2e-suite.ts';

/** A restart of the transport and its IMAP reconnects on a loaded machine: generous, nothing asserts on time. */
const BACK = { timeoutMs: 120_000, intervalMs: 100 };
import { ALICE, BOB, InboxArrivals, WatchMarkReader } from './mail-fixture.ts';

let dovecot: DovecotServer;
let smtp: SmtpPeer;
let relay: HoldingRelay;
let imapRelay: HoldingRelay;
let nats: NatsServerHandle;
let transportDir: string;
let transport: Gateway;
let edge: Gateway;
const handsets: Handset[] = [];
const transportId = `transport-${process.pid}`;
const env = { MMGW_JWT_SECRET: randomBytes(32).toString('base64url') };
const startTransportNode = () =>
  startGateway({
    args: ['--role', 'transport,admin', '--bus', nats.url, '--node-id', transportId],
    env,
    dataDir: transportDir,
  });

before(async () => {
  dovecot = await startDovecot({ users: [ALICE, BOB] });
  smtp = await startSmtpPeer({ dovecot, starttls: false });
  relay = new HoldingRelay(smtp.port);
  await relay.start();
  imapRelay = new HoldingRelay(dovecot.imapPort);
  await imapRelay.start();
  nats = await startNatsServer();
  transportDir = mkdtempSync(join(tmpdir(), 'mmgw-mail-nats-'));
  transport = await startTransportNode();
  edge = await startGateway({
    args: ['--role', 'edge', '--bus', nats.url, '--node-id', `edge-${process.pid}`],
    env,
  });
  await waitReady(edge);
});
after(async () => {
  for (const h of handsets) await h.close().catch(() => {});
  await edge?.stop();
  await transport?.stop();
  await nats?.stop();
  await relay?.stop();
  await imapRelay?.stop();
  await smtp?.stop();
  await dovecot?.stop({ removeDir: true });
  if (transportDir) rmSync(transportDir, { recursive: true, force: true });
});

/** How many messages with this subject Bob's INBOX holds. */
async function copiesAtBob(subject: string): Promise<number> {
  const imap = await dovecot.connect(BOB.user);
  try {
    await imap.mailboxOpen('INBOX');
    const found = await imap.search({ subject }, { uid: true });
    return Array.isArray(found) ? found.length : 0;
  } finally {
    await imap.logout();
  }
}

test('NATS: transport killed mid-send; the device resends with the same clientId; one copy arrives', async () => {
  const device = await provisionDevice(transportDir);
  const handset = handsetFor(edge, device);
  handsets.push(handset);
  await handset.connect();
  const added = await handset.request<any>('mail.account.add', {
    address: ALICE.user,
    imap: {
      host: dovecot.host,
      port: dovecot.imapPort,
      tls: 'none',
      user: ALICE.user,
      password: ALICE.password,
    },
    smtp: { host: '127.0.0.1', port: relay.port, tls: 'none', user: ALICE.user, password: ALICE.password },
  });
  const account = added.account as string;
  const subject = `failover ${randomBytes(4).toString('hex')}`;
  const message = { account, to: [BOB.user], subject, text: 'sent once', clientId: 'c-failover-1' };

  relay.holdMarker = subject;
  const firstTry = handset.request('mail.send', message, { timeoutMs: 10_000 }).then(
    (ok) => ({ ok }),
    (err) => ({ err }),
  );
  await eventually('the SMTP data to reach the relay', () => relay.held > 0, WAIT);
  transport.kill();
  assert.equal(await transport.stop(), null, 'killed by a signal');
  relay.holdMarker = undefined;
  const outcome = await firstTry;
  assert.ok('err' in outcome, 'the first attempt was not acknowledged');
  assert.ok(outcome.err instanceof GatewayError, String(outcome.err));

  transport = await startTransportNode();
  // The same clientId, the account as stored before the kill (no new mail.account.add).
  const resent = await requestWhenAvailable<any>(handset, 'mail.send', message);
  assert.equal(resent.clientId, 'c-failover-1');
  // A second resend is recognised (its Message-ID is in Sent) and sends nothing.
  const again = await handset.request<any>('mail.send', message);
  assert.equal(again.duplicate, true);
  assert.equal(again.messageId, resent.messageId);

  assert.equal(await copiesAtBob(subject), 1, 'exactly one copy at the recipient');
  assert.equal(smtp.accepted.filter((m) => m.raw.toString('latin1').includes(subject)).length, 1);
});

/** A device of its own, with a mail account of `user` on these servers. */
async function deviceWithAccount(user: { user: string; password: string }, imapPort: number) {
  const device = await provisionDevice(transportDir);
  const handset = handsetFor(edge, device);
  handsets.push(handset);
  await handset.connect();
  const server = (port: number) => ({
    host: '127.0.0.1',
    port,
    tls: 'none',
    user: user.user,
    password: user.password,
  });
  const added = await requestWhenAvailable<any>(handset, 'mail.account.add', {
    address: user.user,
    imap: server(imapPort),
    smtp: server(smtp.port),
  });
  return { deviceId: device.imei, handset, account: added.account as string };
}

async function killTransport(): Promise<void> {
  transport.kill();
  assert.equal(await transport.stop(), null, 'killed by a signal');
}

test('NATS: transport killed -9 while mail arrives; every new mail pushed once after it is back, no sync', async () => {
  const { deviceId, handset, account } = await deviceWithAccount(BOB, dovecot.imapPort);
  const arrivals = new InboxArrivals(dovecot, BOB.user, handset, account);
  const marks = new WatchMarkReader(transportDir);
  try {
    await requestWhenAvailable(handset, 'mail.sync', { account, folder: 'INBOX', limit: 10 });
    const up = await arrivals.arrive('up');
    await eventually('the first mail pushed', () => arrivals.pushed('up'), WAIT);
    await eventually('its mark written', () => (marks.uid(deviceId, account) ?? 0) >= up, WAIT);

    // Mail arrives while the transport is dead and while it starts again; the device only
    // listens from here on (no mail.sync).
    await killTransport();
    for (const s of ['down-0', 'down-1', 'down-2']) await arrivals.arrive(s);
    const restarted = startTransportNode();
    await arrivals.arrive('restart-0');
    transport = await restarted;
    await arrivals.arrive('back-0');
    await arrivals.assertEachPushedOnce(BACK);
  } finally {
    await marks.close();
  }
});

test('NATS: transport killed between the SMTP 250 and its answer; the resend is answered like it, sent once', async () => {
  // IMAP through the relay: the APPEND to Sent that follows the 250 is held, the node killed there.
  const { handset, account } = await deviceWithAccount(ALICE, imapRelay.port);
  const subject = `after the 250 ${randomBytes(4).toString('hex')}`;
  const message = { account, to: [BOB.user], subject, text: 'sent once', clientId: 'c-after-250' };
  imapRelay.holdMarker = subject;
  const firstTry = handset.request('mail.send', message, { timeoutMs: 15_000 }).then(
    (ok) => ({ ok }),
    (err) => ({ err }),
  );
  const taken = () => smtp.accepted.filter((m) => m.raw.toString('latin1').includes(subject)).length;
  await eventually('the 250, then the held APPEND', () => taken() === 1 && imapRelay.held > 0, WAIT);
  await killTransport();
  imapRelay.holdMarker = undefined;
  const outcome = await firstTry;
  assert.ok('err' in outcome && outcome.err instanceof GatewayError, 'the first attempt was not answered');

  transport = await startTransportNode();
  const resent = await requestWhenAvailable<any>(handset, 'mail.send', message);
  assert.deepEqual(
    Object.keys(resent).sort(),
    ['bytes', 'clientId', 'duplicate', 'messageId', 'rejected', 'sentCopy'],
    'the shape of a first answer',
  );
  assert.equal(resent.duplicate, true);
  assert.equal(resent.clientId, 'c-after-250');
  assert.match(resent.messageId, /^<c-after-250\./);
  assert.ok(resent.bytes > 0);
  assert.deepEqual(resent.rejected, []);
  assert.equal(resent.sentCopy, false, 'the kill came before the copy to Sent');
  assert.equal(taken(), 1, 'the SMTP server took the mail once');
  assert.equal(await copiesAtBob(subject), 1, 'exactly one copy at the recipient');
});

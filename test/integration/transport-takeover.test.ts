/**
 * Issue #12, no node holds anything only it has: a cluster (3 nats-servers
 * with JetStream, an admin, two transports and an edge, each its own process
 * and data directory, one credentials key) where a device's mail and chat
 * accounts were added through the transport the router picked for it. That
 * transport is killed (SIGKILL); once it leaves the membership the device's
 * requests go to the other transport, which opens the same accounts from the
 * shared state: mail.sync and im.send work without a new mail.account.add or
 * im.login.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { Handset } from '../../device-protocol/handset.ts';
import { type Bus, type NodeHeartbeat, Subjects } from '../../server/bus/bus.ts';
import { connectNatsBus } from '../../server/bus/nats.ts';
import { rendezvousPick } from '../../server/router/index.ts';
import { NatsKvSharedState } from '../../server/store/shared/nats-kv.ts';
import { type DeviceAccountsV1, readDeviceAccounts } from '../../server/transport/kit/account-store.ts';
import { eventually } from '../../testing/index.ts';
import { type DovecotServer, startDovecot } from '../harness/dovecot.ts';
import { type Gateway, provisionDevice, startGateway, waitReady } from '../harness/gateway.ts';
import { type NatsCluster, startNatsCluster } from '../harness/nats-cluster.ts';
import { type ProsodyServer, startProsody } from '../harness/prosody.ts';
import { type SmtpPeer, startSmtpPeer } from '../harness/smtp-peer.ts';
import { handsetFor, requestWhenAvailable, WAIT } from './e2e-suite.ts';
import { persistentRequest } from './im-gateway-app.ts';
import { ALICE, BOB } from './mail-fixture.ts';

let cluster: NatsCluster;
let dovecot: DovecotServer;
let smtp: SmtpPeer;
let prosody: ProsodyServer;
let probe: Bus;
let state: NatsKvSharedState;
let adminDir: string;
const gateways: Gateway[] = [];
const handsets: Handset[] = [];
const tag = `${process.pid}`;
const transportIds = [`ta-${tag}`, `tb-${tag}`];
const alive = new Map<string, number>();
const env = {
  MMGW_JWT_SECRET: randomBytes(32).toString('base64url'),
  MMGW_CREDENTIALS_KEY: randomBytes(32).toString('base64'),
};
const transports = new Map<string, Gateway>();

before(async () => {
  dovecot = await startDovecot({ users: [ALICE, BOB] });
  smtp = await startSmtpPeer({ dovecot, starttls: false });
  prosody = await startProsody({
    domain: 'example.test',
    users: [
      { user: 'alice', password: 'alice-pw' },
      { user: 'bob', password: 'bob-pw' },
    ],
  });
  cluster = await startNatsCluster({ size: 3 });
  const bus = cluster.urls.join(',');
  probe = await connectNatsBus({ servers: bus, name: `probe-${tag}` });
  probe.subscribe(Subjects.heartbeat, (m) => {
    const hb = m.data as NodeHeartbeat;
    alive.set(hb.nodeId, Date.now());
  });
  state = await NatsKvSharedState.connect({ servers: cluster.urls, replicas: 3, name: `state-${tag}` });
  adminDir = mkdtempSync(join(tmpdir(), 'mmgw-takeover-admin-'));
  gateways.push(
    await startGateway({
      args: ['--role', 'admin', '--bus', bus, '--node-id', `adm-${tag}`],
      env,
      dataDir: adminDir,
    }),
  );
  for (const id of transportIds) {
    const t = await startGateway({ args: ['--role', 'transport', '--bus', bus, '--node-id', id], env });
    transports.set(id, t);
    gateways.push(t);
  }
  const edge = await startGateway({
    args: ['--role', 'edge', '--bus', bus, '--node-id', `edge-${tag}`],
    env,
  });
  gateways.push(edge);
  await waitReady(edge);
  await eventually(
    'both transports in the membership',
    () => transportIds.every((id) => alive.has(id)),
    WAIT,
  );
});

after(async () => {
  for (const h of handsets) await h.close().catch(() => {});
  for (const g of gateways) await g.stop().catch(() => {});
  await state?.close();
  await probe?.close();
  await cluster?.stop();
  await prosody?.stop();
  await smtp?.stop();
  await dovecot?.stop({ removeDir: true });
  if (adminDir) rmSync(adminDir, { recursive: true, force: true });
});

test('kill -9 of the transport holding a device: the other one serves its mail and chat accounts', async () => {
  const device = await provisionDevice(adminDir);
  const holder = rendezvousPick(device.imei, transportIds);
  const survivor = transportIds.find((id) => id !== holder);
  assert.ok(holder && survivor);
  const edge = gateways.at(-1)!;
  const handset = handsetFor(edge, device);
  handsets.push(handset);
  await handset.connect();
  const server = {
    host: dovecot.host,
    port: dovecot.imapPort,
    tls: 'none',
    user: ALICE.user,
    password: ALICE.password,
  };
  const mail = (
    await requestWhenAvailable<any>(handset, 'mail.account.add', {
      address: ALICE.user,
      imap: server,
      smtp: { ...server, host: '127.0.0.1', port: smtp.port },
    })
  ).account as string;
  const chat = (
    await persistentRequest<any>(handset, 'im.login', {
      jid: prosody.jid('alice'),
      password: 'alice-pw',
      host: prosody.host,
      port: prosody.c2sPort,
    })
  ).account as string;
  await requestWhenAvailable(handset, 'mail.sync', { account: mail, folder: 'INBOX', limit: 5 });

  // Both accounts are in the cluster's tables (a transport moves them there once the tables open).
  const mailTable = await state.table<DeviceAccountsV1>('mail_accounts', { read: readDeviceAccounts });
  const imTable = await state.table<DeviceAccountsV1>('im_accounts', { read: readDeviceAccounts });
  const deviceIds = () => [...mailTable.entries()].map((e) => e.key);
  await eventually(
    'the accounts in the shared state',
    () => mailTable.size() > 0 && imTable.size() > 0,
    WAIT,
  );
  assert.equal(deviceIds().length, 1);

  const killed = transports.get(holder)!;
  killed.kill();
  assert.equal(await killed.stop(), null, 'killed by a signal');
  // The edge's router moves the device to the survivor once the holder's heartbeats stop (membership TTL).

  const synced = await requestWhenAvailable<any>(handset, 'mail.sync', {
    account: mail,
    folder: 'INBOX',
    limit: 5,
  });
  assert.ok(synced, 'mail.sync answered through the survivor');
  const sent = await persistentRequest<any>(handset, 'im.send', {
    account: chat,
    to: 'bob@example.test',
    body: `after the takeover ${randomBytes(4).toString('hex')}`,
    clientId: 'c-takeover-1',
  });
  assert.equal(sent.clientId, 'c-takeover-1');
});

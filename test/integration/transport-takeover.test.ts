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
import { after, before, test } from 'node:test';
import type { Handset } from '../../device-protocol/handset.ts';
import { rendezvousPick } from '../../server/router/index.ts';
import { type DeviceAccountsV1, readDeviceAccounts } from '../../server/transport/kit/account-store.ts';
import { eventually } from '../../testing/index.ts';
import { handsetFor, requestWhenAvailable, WAIT } from './e2e-suite.ts';
import { persistentRequest } from './im-gateway-app.ts';
import { ALICE, BOB } from './mail-fixture.ts';
import { startTransportCluster, type TransportClusterRig } from './transport-cluster-rig.ts';

let rig: TransportClusterRig;
const handsets: Handset[] = [];

before(async () => {
  rig = await startTransportCluster({
    mailUsers: [ALICE, BOB],
    chatUsers: [
      { user: 'alice', password: 'alice-pw' },
      { user: 'bob', password: 'bob-pw' },
    ],
  });
});

after(async () => {
  for (const h of handsets) await h.close().catch(() => {});
  await rig?.stop();
});

test('kill -9 of the transport holding a device: the other one serves its mail and chat accounts', async () => {
  const { dovecot, smtp, prosody, state, transportIds } = rig;
  const device = await rig.provision();
  const holder = rendezvousPick(device.imei, transportIds);
  const survivor = transportIds.find((id) => id !== holder);
  assert.ok(holder && survivor);
  const handset = handsetFor(rig.edge, device);
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

  const killed = rig.transports.get(holder)!;
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

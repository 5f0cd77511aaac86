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
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { GatewayError } from '../../device-protocol/errors.ts';
import type { Handset } from '../../device-protocol/handset.ts';
import { eventually } from '../../testing/index.ts';
import { type DovecotServer, startDovecot } from '../harness/dovecot.ts';
import { type Gateway, provisionDevice, startGateway, waitReady } from '../harness/gateway.ts';
import { type NatsServerHandle, startNatsServer } from '../harness/nats.ts';
import { type SmtpPeer, startSmtpPeer } from '../harness/smtp-peer.ts';
import { handsetFor, requestWhenAvailable, WAIT } from './e2e-suite.ts';
import { ALICE, BOB } from './mail-fixture.ts';

/** A TCP relay to the SMTP peer that, while `holdMarker` is set, swallows the client chunk containing it and everything after. */
class HoldingRelay {
  holdMarker: string | undefined;
  held = 0;
  port = 0;
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();

  constructor(private readonly upstreamPort: number) {
    this.server = createServer((client) => {
      const upstream = createConnection(this.upstreamPort, '127.0.0.1');
      this.sockets.add(client).add(upstream);
      let holding = false;
      upstream.on('data', (d) => client.write(d));
      client.on('data', (d: Buffer) => {
        if (!holding && this.holdMarker && d.toString('latin1').includes(this.holdMarker)) {
          holding = true;
          this.held++;
        }
        if (!holding) upstream.write(d);
      });
      const end = () => {
        client.destroy();
        upstream.destroy();
        this.sockets.delete(client);
        this.sockets.delete(upstream);
      };
      client.on('close', end).on('error', end);
      upstream.on('close', end).on('error', end);
    });
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as { port: number }).port;
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

let dovecot: DovecotServer;
let smtp: SmtpPeer;
let relay: HoldingRelay;
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
  await smtp?.stop();
  await dovecot?.stop({ removeDir: true });
  if (transportDir) rmSync(transportDir, { recursive: true, force: true });
});

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

  const imap = await dovecot.connect(BOB.user);
  try {
    await imap.mailboxOpen('INBOX');
    const found = await imap.search({ subject }, { uid: true });
    assert.equal(Array.isArray(found) ? found.length : 0, 1, 'exactly one copy at the recipient');
  } finally {
    await imap.logout();
  }
  assert.equal(smtp.accepted.filter((m) => m.raw.toString('latin1').includes(subject)).length, 1);
});

/**
 * No silent gaps (issue 12 item 5), end to end over NATS with the edge and
 * the transport (+ admin) in separate processes, a real Dovecot and Prosody,
 * and a handset application that only listens to PushCursors (no sync code):
 *
 * - every nats-server stopped mid-flow while mail and chat keep arriving,
 *   then started again: every item reaches the application once, in order
 *   (the transport retries what the bus did not take; `prev` and the SDK's
 *   re-sync cover the rest);
 * - the edge killed (-9) mid-flow with items arriving meanwhile, a new edge
 *   behind the same address (a TCP relay in front, as a load balancer): the
 *   handset gets `resumed: false` and PushCursors catches up by itself; again
 *   every item once, in order;
 * - the edge frozen (SIGSTOP) while items arrive, then continued: pushes
 *   that timed out meanwhile are retried and may arrive twice at the SDK,
 *   which hands each on once.
 *
 * Mail arrives by IMAP APPEND into the device's INBOX, chat from a plain XMPP
 * client of another user: neither path goes through NATS.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { type AddressInfo, createConnection, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { xml, type XmppClient } from '@xmpp/client';
import type { Handset } from '../../device-protocol/handset.ts';
import { PushCursors } from '../../device-protocol/push-cursors.ts';
import { eventually } from '../../testing/index.ts';
import { type DovecotServer, startDovecot } from '../harness/dovecot.ts';
import { type Gateway, provisionDevice, startGateway, waitReady } from '../harness/gateway.ts';
import { type NatsServerHandle, startNatsServer } from '../harness/nats.ts';
import { plainXmppClient, type ProsodyServer, startProsody } from '../harness/prosody.ts';
import { type SmtpPeer, startSmtpPeer } from '../harness/smtp-peer.ts';
import { handsetFor, WAIT } from './e2e-suite.ts';
import { monotonicAcks, persistentRequest } from './im-gateway-app.ts';

const DOMAIN = 'example.test';
const MAIL_USERS = [
  { user: `gap1@${DOMAIN}`, password: 'gap1-pw' },
  { user: `gap2@${DOMAIN}`, password: 'gap2-pw' },
  { user: `gap3@${DOMAIN}`, password: 'gap3-pw' },
];
/** Long enough for a stopped bus and a restarted edge on a loaded 2-core machine; nothing asserts on time. */
const LONG = { timeoutMs: 120_000 };

let dovecot: DovecotServer;
let smtp: SmtpPeer;
let prosody: ProsodyServer;
let nats: NatsServerHandle;
let sender: XmppClient;
let transportDir: string;
let transport: Gateway;
let edge: Gateway;
/** What the handsets connect to: a TCP relay to whichever edge runs (a load balancer's part). */
let front: Server;
const frontSockets = new Set<Socket>();
const handsets: Handset[] = [];
const env = { MMGW_JWT_SECRET: randomBytes(32).toString('base64url') };

const startEdge = async () => {
  const gw = await startGateway({
    args: ['--role', 'edge', '--bus', nats.url, '--node-id', `edge-${process.pid}`],
    env,
  });
  await waitReady(gw);
  return gw;
};

/** Relays each connection to the edge running now; a dead edge's connections just close. */
function startFront(): Promise<Server> {
  const server = createServer((client) => {
    const upstream = createConnection(edge.devicePort, '127.0.0.1');
    frontSockets.add(client).add(upstream);
    client.pipe(upstream).pipe(client);
    const end = () => {
      client.destroy();
      upstream.destroy();
      frontSockets.delete(client);
      frontSockets.delete(upstream);
    };
    client.on('close', end).on('error', end);
    upstream.on('close', end).on('error', end);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

before(async () => {
  dovecot = await startDovecot({ users: MAIL_USERS });
  smtp = await startSmtpPeer({ dovecot, starttls: false });
  prosody = await startProsody({
    domain: DOMAIN,
    users: [
      { user: 'gap1', password: 'gap1-pw' },
      { user: 'gap2', password: 'gap2-pw' },
      { user: 'gap3', password: 'gap3-pw' },
      { user: 'friend', password: 'friend-pw' },
    ],
  });
  sender = await plainXmppClient({
    port: prosody.c2sPort,
    domain: DOMAIN,
    user: 'friend',
    password: 'friend-pw',
    resource: 'sender',
  });
  monotonicAcks(sender);
  nats = await startNatsServer();
  transportDir = mkdtempSync(join(tmpdir(), 'mmgw-push-gaps-'));
  transport = await startGateway({
    args: ['--role', 'transport,admin', '--bus', nats.url, '--node-id', `transport-${process.pid}`],
    env,
    dataDir: transportDir,
  });
  edge = await startEdge();
  front = await startFront();
});

after(async () => {
  for (const h of handsets) await h.close().catch(() => {});
  for (const socket of frontSockets) socket.destroy();
  await new Promise((resolve) => (front ? front.close(resolve) : resolve(undefined)));
  await edge?.stop();
  await transport?.stop();
  await nats?.stop();
  await sender?.stop().catch(() => {});
  await prosody?.stop();
  await smtp?.stop();
  await dovecot?.stop({ removeDir: true });
  if (transportDir) rmSync(transportDir, { recursive: true, force: true });
});

/** A device with one mail and one chat account of `user`, and an application that only listens. */
async function deviceApp(index: number) {
  const mailUser = MAIL_USERS[index]!;
  const local = mailUser.user.split('@')[0]!;
  const device = await provisionDevice(transportDir);
  const handset = handsetFor({ url: `ws://127.0.0.1:${(front.address() as AddressInfo).port}` }, device);
  handsets.push(handset);
  await handset.connect();
  await persistentRequest(handset, 'mail.account.add', {
    address: mailUser.user,
    imap: {
      host: dovecot.host,
      port: dovecot.imapPort,
      tls: 'none',
      user: mailUser.user,
      password: mailUser.password,
    },
    smtp: {
      host: '127.0.0.1',
      port: smtp.port,
      tls: 'none',
      user: mailUser.user,
      password: mailUser.password,
    },
  });
  await persistentRequest(handset, 'im.login', {
    jid: prosody.jid(local),
    password: `${local}-pw`,
    host: prosody.host,
    port: prosody.c2sPort,
  });
  // From here on the application only listens: accounts, syncs and catch-ups are PushCursors' own.
  const cursors = new PushCursors(handset, { backoff: { initialMs: 100, maxMs: 2000 } });
  const mail: string[] = [];
  const chat: string[] = [];
  let resumedFalse = 0;
  cursors.on('mail', (e) => mail.push(String(e.header.subject)));
  cursors.on('chat', (e) => chat.push(String(e.message.body)));
  handset.on('connected', (e) => {
    if (!e.resumed) resumedFalse++;
  });
  await eventually(
    'the first sync of both streams',
    () => !cursors.busy && cursors.snapshot().mail.length === 1,
    WAIT,
  );
  return {
    handset,
    cursors,
    jid: prosody.jid(local),
    mailUser: mailUser.user,
    mail: (prefix: string) => mail.filter((s) => s.startsWith(prefix)),
    chat: (prefix: string) => chat.filter((s) => s.startsWith(prefix)),
    resumedFalse: () => resumedFalse,
  };
}

type App = Awaited<ReturnType<typeof deviceApp>>;

/** One mail (APPEND to the device's INBOX) and one chat message (from friend), both named `name`. */
async function arrive(app: App, name: string): Promise<void> {
  const rfc822 = `From: friend@${DOMAIN}\r\nTo: ${app.mailUser}\r\nSubject: ${name}\r\nMessage-ID: <${name}@${DOMAIN}>\r\n\r\n${name}\r\n`;
  await dovecot.appendMessage(app.mailUser, 'INBOX', rfc822);
  await sender.send(xml('message', { to: app.jid, type: 'chat', id: name }, xml('body', {}, name)));
}

const names = (prefix: string, from: number, count: number) =>
  Array.from({ length: count }, (_, i) => `${prefix}${String(from + i).padStart(3, '0')}`);

/**
 * Items arrive before `fault.cut`, between it and `fault.mend`, and after;
 * then every one must be at the application once, in order.
 */
async function itemsThroughFault(
  app: App,
  tag: string,
  fault: { cut(): Promise<void>; whileDown?(): Promise<void>; mend(): Promise<void> },
): Promise<void> {
  const prefix = `${tag}-${randomBytes(3).toString('hex')}-`;
  const before = names(prefix, 0, 4);
  const during = names(prefix, 4, 8);
  const afterwards = names(prefix, 12, 4);
  for (const name of before) await arrive(app, name);
  await eventually(
    'the first items pushed',
    () => app.mail(prefix).length >= 2 && app.chat(prefix).length >= 2,
    WAIT,
  );
  await fault.cut();
  for (const name of during) await arrive(app, name);
  await fault.whileDown?.();
  await fault.mend();
  for (const name of afterwards) await arrive(app, name);

  const expected = [...before, ...during, ...afterwards];
  await eventually(
    'every item at the application',
    () => app.mail(prefix).length >= expected.length && app.chat(prefix).length >= expected.length,
    LONG,
  );
  // Anything doubled would come right behind; a round trip makes room for it.
  await app.handset.ping();
  assert.deepEqual(app.mail(prefix), expected, 'mail: each once, in order');
  assert.deepEqual(app.chat(prefix), expected, 'chat: each once, in order');
}

/** Until a request `where` fails: the fault has lasted long enough for pushes meanwhile to fail too. */
async function requestsFail(app: App, where: string): Promise<void> {
  await eventually(
    `a request ${where} fails`,
    () =>
      app.handset.request('sys.echo', { n: 1 }, { timeoutMs: 3000 }).then(
        () => false,
        () => true,
      ),
    WAIT,
  );
}

test('every nats-server stopped mid-flow: every item at the application once, in order', async () => {
  const app = await deviceApp(0);
  const port = nats.port;
  await itemsThroughFault(app, 'nats', {
    // Every node's NATS connection breaks with the server process: no node can push or ask.
    cut: () => nats.stop(),
    whileDown: () => requestsFail(app, 'through the bus'),
    async mend() {
      nats = await startNatsServer({ port });
    },
  });
  assert.equal(app.resumedFalse(), 0, 'the session lived through the outage');
  app.cursors.stop();
});

test('the edge killed mid-flow: resumed: false, PushCursors catches up by itself; every item once, in order', async () => {
  const app = await deviceApp(1);
  await itemsThroughFault(app, 'edge', {
    async cut() {
      edge.kill();
      assert.equal(await edge.stop(), null, 'killed by a signal');
    },
    async mend() {
      edge = await startEdge();
      await eventually('a new session', () => app.resumedFalse() === 1, LONG);
    },
  });
  app.cursors.stop();
});

test('the edge frozen (SIGSTOP) mid-flow: every item at the application once, in order', async () => {
  const app = await deviceApp(2);
  const frozen = edge.pid;
  try {
    await itemsThroughFault(app, 'frozen', {
      async cut() {
        process.kill(frozen, 'SIGSTOP');
      },
      whileDown: () => requestsFail(app, 'through the frozen edge'),
      async mend() {
        process.kill(frozen, 'SIGCONT');
      },
    });
  } finally {
    process.kill(frozen, 'SIGCONT');
  }
  app.cursors.stop();
});

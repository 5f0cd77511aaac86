/**
 * Chat over NATS with the edge and the transport (+ admin) in separate
 * processes, against a private Prosody:
 * - the edge publishes device session up/down on the bus (what the transport
 *   holding the device acts on);
 * - the transport process is killed (SIGKILL) mid-conversation and comes back
 *   on the same data directory: its accounts return without im.login, and
 *   every message is at the receiving application exactly once, in order
 *   (the application dedups by origin-id/stanza-id and catches up from its
 *   cursor; the sender resends with the same clientId until im.sent);
 * - issue #12: the transport killed after Prosody took an im.send and before
 *   the answer (a relay in front of Prosody holds everything Prosody says on
 *   that stream from then on, its stream-management ack included): the resend
 *   with the same clientId is answered like the first, `duplicate: true`, from
 *   the account's archive, and Bob has the message once;
 * - the transport's heartbeat carries the devices and accounts it serves.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { Handset } from '../../device-protocol/handset.ts';
import { type XmppClient, xml } from '@xmpp/client';
import { GatewayError } from '../../device-protocol/errors.ts';
import { type Bus, type DeviceSessionEvent, type NodeHeartbeat, Subjects } from '../../server/bus/bus.ts';
import { connectNatsBus } from '../../server/bus/nats.ts';
import { eventually } from '../../testing/index.ts';
import { type Gateway, provisionDevice, startGateway, waitReady } from '../harness/gateway.ts';
import { type NatsServerHandle, startNatsServer } from '../harness/nats.ts';
import { HoldingRelay } from '../harness/holding-relay.ts';
import { plainXmppClient, type ProsodyServer, startProsody } from '../harness/prosody.ts';
import { handsetFor, WAIT } from './e2e-suite.ts';
import { ChatApp, ChatSender, monotonicAcks, persistentRequest } from './im-gateway-app.ts';

let prosody: ProsodyServer;
let nats: NatsServerHandle;
let watcher: Bus;
let xmppRelay: HoldingRelay;
let bobReceiver: XmppClient | undefined;
let transportDir: string;
let edgeDir: string;
let transport: Gateway;
let edge: Gateway;
const handsets: Handset[] = [];
const transportId = `transport-${process.pid}`;
const env = { MMGW_JWT_SECRET: randomBytes(32).toString('base64url') };
const startTransportNode = () =>
  startGateway({
    args: ['--role', 'transport,admin', '--bus', nats.url, '--node-id', transportId],
    // Its log says how a resend was recognised (test/run.js silences gateways by default).
    env: { ...env, MMGW_LOG_LEVEL: 'info' },
    dataDir: transportDir,
  });
const sessionEvents: Array<{ kind: 'up' | 'down' } & DeviceSessionEvent> = [];
const heartbeats: NodeHeartbeat[] = [];

before(async () => {
  prosody = await startProsody({
    domain: 'example.test',
    users: [
      { user: 'alice', password: 'alice-pw' },
      { user: 'bob', password: 'bob-pw' },
    ],
    rosters: {
      alice: [{ jid: 'bob@example.test', name: 'Bob' }],
      bob: [{ jid: 'alice@example.test', name: 'Alice' }],
    },
  });
  xmppRelay = new HoldingRelay(prosody.c2sPort);
  await xmppRelay.start();
  nats = await startNatsServer();
  watcher = await connectNatsBus({ servers: nats.url, name: 'im-nats-test' });
  watcher.subscribe(Subjects.heartbeat, (m) => {
    const hb = m.data as NodeHeartbeat;
    if (hb.nodeId === transportId) heartbeats.push(hb);
  });
  watcher.subscribe(Subjects.sessionUp, (m) => {
    sessionEvents.push({ kind: 'up', ...(m.data as DeviceSessionEvent) });
  });
  watcher.subscribe(Subjects.sessionDown, (m) => {
    sessionEvents.push({ kind: 'down', ...(m.data as DeviceSessionEvent) });
  });
  transportDir = mkdtempSync(join(tmpdir(), 'mmgw-im-nats-'));
  edgeDir = mkdtempSync(join(tmpdir(), 'mmgw-im-nats-edge-'));
  writeFileSync(join(edgeDir, 'gw.json'), JSON.stringify({ edge: { resumeWindowMs: 1000 } }));
  transport = await startTransportNode();
  edge = await startGateway({
    args: [
      '--role',
      'edge',
      '--bus',
      nats.url,
      '--node-id',
      `edge-${process.pid}`,
      '--config',
      join(edgeDir, 'gw.json'),
    ],
    env,
    dataDir: edgeDir,
  });
  await waitReady(edge);
});
after(async () => {
  for (const h of handsets) await h.close().catch(() => {});
  await edge?.stop();
  await transport?.stop();
  await bobReceiver?.stop().catch(() => {});
  await watcher?.close();
  await nats?.stop();
  await xmppRelay?.stop();
  await prosody?.stop();
  if (transportDir) rmSync(transportDir, { recursive: true, force: true });
  if (edgeDir) rmSync(edgeDir, { recursive: true, force: true });
});

const connect = async (device: { imei: string; secret: string }) => {
  const h = handsetFor(edge, device);
  handsets.push(h);
  await h.connect();
  return h;
};
const login = (h: Handset, user: 'alice' | 'bob') =>
  persistentRequest<any>(h, 'im.login', {
    jid: prosody.jid(user),
    password: `${user}-pw`,
    host: prosody.host,
    port: prosody.c2sPort,
  });

test('NATS: the edge publishes device session up and down', async () => {
  const device = await provisionDevice(transportDir);
  const h = await connect(device);
  await eventually(
    'session up',
    () => sessionEvents.some((e) => e.kind === 'up' && e.deviceId === device.imei),
    WAIT,
  );
  const up = sessionEvents.find((e) => e.kind === 'up' && e.deviceId === device.imei)!;
  await h.close();
  // Detached, then ended once the (1 s) resume window is over.
  await eventually(
    'session down',
    () => sessionEvents.some((e) => e.kind === 'down' && e.deviceId === device.imei),
    WAIT,
  );
  const down = sessionEvents.find((e) => e.kind === 'down' && e.deviceId === device.imei)!;
  assert.equal(down.sessionId, up.sessionId);
});

test('NATS: transport killed -9 mid-conversation; every message at B once, in order', async () => {
  const devA = await provisionDevice(transportDir);
  const devB = await provisionDevice(transportDir);
  const a = await connect(devA);
  const b = await connect(devB);
  const aliceAcc = (await login(a, 'alice')).account as string;
  const bobAcc = (await login(b, 'bob')).account as string;
  const app = new ChatApp(b, bobAcc);
  await app.start();
  const sender = new ChatSender(a, aliceAcc);
  const bodies = Array.from({ length: 16 }, (_, i) => `kill-${String(i).padStart(2, '0')}`);
  let killed = false;
  for (const [i, body] of bodies.entries()) {
    // The kill lands while the next send is under way (no await on it before the kill).
    if (i === 6) {
      await eventually('the first messages at B', () => app.bodies('kill-').length >= 3, WAIT);
      const inFlight = sender.send('bob@example.test', body, `${body}-id`);
      transport.kill();
      assert.equal(await transport.stop(), null, 'killed by a signal');
      killed = true;
      transport = await startTransportNode();
      await inFlight;
      continue;
    }
    await sender.send('bob@example.test', body, `${body}-id`);
  }
  assert.ok(killed);
  await eventually('every message at B', () => app.bodies('kill-').length >= bodies.length, {
    timeoutMs: 90_000,
  });
  await app.idle();
  await app.sync();
  assert.deepEqual(app.bodies('kill-'), bodies);
  assert.equal(new Set(app.timeline.map((m) => m.originId ?? m.stanzaId)).size, app.timeline.length);
  // The accounts came back by themselves: the same account ids still answer, no im.login since the kill.
  const list = await b.request<any>('im.accounts', {});
  assert.deepEqual(
    list.accounts.map((x: any) => x.account),
    [bobAcc],
  );
});

test('NATS: transport killed after Prosody took an im.send, before its answer; the resend is answered, Bob has one', async () => {
  const bob = await plainXmppClient({
    port: prosody.c2sPort,
    domain: prosody.domain,
    user: 'bob',
    password: 'bob-pw',
    resource: 'receiver',
  });
  bobReceiver = bob;
  const got: string[] = [];
  monotonicAcks(bob);
  bob.on('stanza', (st) => {
    const body = st.is('message') ? st.getChildText('body') : null;
    if (body) got.push(body);
  });
  // Above any other resource of Bob's (the gateway's, from the test before): chat to his bare JID comes here.
  await bob.send(xml('presence', {}, xml('priority', {}, '127')));
  const a = await connect(await provisionDevice(transportDir));
  // Alice's stream goes through the relay.
  const account = (
    await persistentRequest<any>(a, 'im.login', {
      jid: prosody.jid('alice'),
      password: 'alice-pw',
      host: '127.0.0.1',
      port: xmppRelay.port,
    })
  ).account as string;
  const body = `once ${randomBytes(4).toString('hex')}`;
  const message = { account, to: 'bob@example.test', body, clientId: 'c-after-take' };
  // A first message: the session reads the archive for resend checks once, before the hold.
  await persistentRequest(a, 'im.send', { ...message, body: `${body} first`, clientId: 'c-before-take' });
  await eventually('Bob got the first message', () => got.includes(`${body} first`), WAIT);

  xmppRelay.holdReplies = true;
  const firstTry = a.request('im.send', message, { timeoutMs: 15_000 }).then(
    (ok) => ({ ok }),
    (err) => ({ err }),
  );
  await eventually('Bob got the message', () => got.includes(body), WAIT);
  transport.kill();
  assert.equal(await transport.stop(), null, 'killed by a signal');
  xmppRelay.holdReplies = false;
  const outcome = await firstTry;
  assert.ok('err' in outcome && outcome.err instanceof GatewayError, 'the first attempt was not answered');

  transport = await startTransportNode();
  const recognised = (clientId: string, from: string) =>
    transport.stdout.some(
      (l) =>
        l.includes('chat resend recognised') && l.includes(`"${clientId}"`) && l.includes(`"from":"${from}"`),
    );
  // The SDK asks for the compact forms: an im.send is answered with no body, the first as its resend.
  const resent = await persistentRequest<any>(a, 'im.send', message);
  assert.deepEqual(resent, { account, clientId: 'c-after-take' });
  await eventually('the resend found in the archive', () => recognised('c-after-take', 'archive'), WAIT);
  // A later message on the same stream comes after any second copy would have.
  const later = { ...message, body: `${body} later`, clientId: 'c-after-take-2' };
  assert.deepEqual(await persistentRequest<any>(a, 'im.send', later), {
    account,
    clientId: 'c-after-take-2',
  });
  await eventually('the later message at Bob', () => got.includes(later.body), WAIT);
  assert.equal(got.filter((b) => b === body).length, 1, 'one message at Bob');
  // Its resend after a plain timeout: answered from the sent record.
  await persistentRequest<any>(a, 'im.send', later);
  await eventually('the resend found in the sent record', () => recognised('c-after-take-2', 'record'), WAIT);
  assert.equal(got.filter((b) => b === later.body).length, 1);
});

test('NATS: the transport heartbeat carries the devices and chat accounts it serves', async () => {
  // Alice and Bob of the kill test, Alice of the resend test; no mail account.
  const expected = { devices: 3, mailAccounts: 0, imAccounts: 3 };
  await eventually(
    'served counts in the heartbeat',
    () => {
      const served = heartbeats.at(-1)?.served;
      return JSON.stringify(served) === JSON.stringify(expected);
    },
    WAIT,
  );
});

/**
 * Chat end to end through a real gateway process (every role, in-process
 * bus) and the Handset SDK, against a private Prosody: handset A to handset
 * B; a handset and a plain XMPP client both ways; carbons from a second
 * client of the same account; a handset offline while messages arrive
 * catches up exactly once, in order; accounts come back by themselves after
 * the handset reconnects (session up/down from the edge) and after a gateway
 * restart; Prosody restarted mid-conversation loses and doubles nothing at
 * the receiving application.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { client, type XmppClient, xml } from '@xmpp/client';
import { GatewayError } from '../../device-protocol/errors.ts';
import type { Handset } from '../../device-protocol/handset.ts';
import { eventually } from '../../testing/index.ts';
import { type Gateway, provisionDevice, startGateway } from '../harness/gateway.ts';
import { type ProsodyServer, startProsody } from '../harness/prosody.ts';
import { handsetFor, WAIT } from './e2e-suite.ts';
import { ChatApp, ChatSender, monotonicAcks, persistentRequest } from './im-gateway-app.ts';

const PW = { alice: 'alice-pw', bob: 'bob-pw', carol: 'carol-pw' };

describe('chat through the gateway', { timeout: 300_000 }, () => {
  let prosody: ProsodyServer;
  let dataDir: string;
  let gw: Gateway;
  let devA: { imei: string; secret: string };
  let devB: { imei: string; secret: string };
  const open: Handset[] = [];
  const plains: XmppClient[] = [];
  let aliceAcc: string;
  let bobAcc: string;
  let carol: XmppClient;
  const carolGot: string[] = [];
  const carolPresence: Array<{ from: string; type: string }> = [];

  const start = () =>
    startGateway({
      dataDir,
      args: ['--config', join(dataDir, 'gw.json')],
      // Short resume window and linger, so that a handset that left is seen gone within seconds.
      env: { MMGW_IM_LINGER_MS: '1500' },
    });
  const connect = async (dev: { imei: string; secret: string }) => {
    const h = handsetFor(gw, dev);
    open.push(h);
    await h.connect();
    return h;
  };
  const plainClient = async (user: 'alice' | 'bob' | 'carol', resource: string) => {
    const x = client({
      service: `xmpp://${prosody.host}:${prosody.c2sPort}`,
      domain: prosody.domain,
      username: user,
      password: PW[user],
      resource,
    });
    x.reconnect.stop();
    x.on('error', (err) => {
      if (process.env.IM_DEBUG) console.error(user, resource, 'error', err);
    });
    x.on('status', (st) => {
      if (process.env.IM_DEBUG) console.error(user, resource, st);
    });
    monotonicAcks(x);
    plains.push(x);
    await x.start();
    return x;
  };
  const login = (h: Handset, user: 'alice' | 'bob') =>
    h.request<any>('im.login', {
      jid: prosody.jid(user),
      password: PW[user],
      host: prosody.host,
      port: prosody.c2sPort,
    });

  before(async () => {
    prosody = await startProsody({
      domain: 'example.test',
      users: Object.entries(PW).map(([user, password]) => ({ user, password })),
      rosters: {
        alice: [{ jid: 'bob@example.test', name: 'Bob' }],
        bob: [
          { jid: 'alice@example.test', name: 'Alice', groups: ['Friends'] },
          { jid: 'carol@example.test', name: 'Carol' },
        ],
        carol: [{ jid: 'bob@example.test', name: 'Bob' }],
      },
    });
    dataDir = mkdtempSync(join(tmpdir(), 'mmgw-im-gw-'));
    writeFileSync(join(dataDir, 'gw.json'), JSON.stringify({ edge: { resumeWindowMs: 1500 } }));
    gw = await start();
    devA = await provisionDevice(dataDir);
    devB = await provisionDevice(dataDir);
    carol = await plainClient('carol', 'desk');
    carol.on('stanza', (el) => {
      if (el.is('message') && el.getChildText('body')) carolGot.push(el.getChildText('body') ?? '');
      const from = String(el.attrs.from ?? '');
      if (el.is('presence') && from.startsWith('bob@') && !from.endsWith('/laptop')) {
        carolPresence.push({ from: String(el.attrs.from), type: String(el.attrs.type ?? 'available') });
      }
    });
    await carol.send(xml('presence', {}));
  });
  after(async () => {
    for (const h of open) await h.close().catch(() => {});
    for (const x of plains) await x.stop().catch(() => {});
    await gw?.stop();
    await prosody?.stop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  test('im.login: a wrong password and an unreachable server give distinct codes', async () => {
    const a = await connect(devA);
    await assert.rejects(
      a.request('im.login', {
        jid: prosody.jid('alice'),
        password: 'wrong',
        host: prosody.host,
        port: prosody.c2sPort,
      }),
      (err: unknown) => err instanceof GatewayError && err.code === 'im.auth_failed',
    );
    await assert.rejects(
      a.request('im.login', { jid: prosody.jid('alice'), password: PW.alice, host: '127.0.0.1', port: 1 }),
      (err: unknown) => err instanceof GatewayError && err.code === 'im.unreachable',
    );
    const list = await a.request<any>('im.accounts', {});
    assert.deepEqual(list.accounts, []);
  });

  test('handset A to handset B: im.sent, then B gets im.message exactly once', async () => {
    const a = open[0]!;
    const b = await connect(devB);
    const bEvents: Array<{ name: string; body: any }> = [];
    b.on('event', (e) => bEvents.push({ name: e.name, body: e.body }));
    const online = await login(a, 'alice');
    aliceAcc = online.account;
    assert.match(aliceAcc, /^x[0-9a-f]{16}$/);
    assert.equal(online.state, 'online');
    bobAcc = (await login(b, 'bob')).account;

    const roster = await b.request<any>('im.roster', { account: bobAcc });
    const jids = roster.items.map((i: any) => i.jid).sort();
    assert.deepEqual(jids, ['alice@example.test', 'carol@example.test']);
    const aliceItem = roster.items.find((i: any) => i.jid === 'alice@example.test');
    assert.equal(aliceItem.name, 'Alice');
    assert.deepEqual(aliceItem.groups, ['Friends']);
    assert.equal(aliceItem.subscription, 'both');

    const sent = await a.request<any>('im.send', {
      account: aliceAcc,
      to: 'bob@example.test',
      body: 'hi bob, through the gateway',
      clientId: 'gw-c-1',
    });
    assert.equal(sent.clientId, 'gw-c-1');
    await eventually(
      'im.message at B',
      () => bEvents.some((e) => e.name === 'im.message' && e.body.body === 'hi bob, through the gateway'),
      WAIT,
    );
    // Let anything doubled arrive before counting.
    await b.request('sys.echo', 'barrier');
    await a.request<any>('im.send', {
      account: aliceAcc,
      to: 'bob@example.test',
      body: 'second',
      clientId: 'gw-c-2',
    });
    await eventually(
      'the second message',
      () => bEvents.some((e) => e.name === 'im.message' && e.body.body === 'second'),
      WAIT,
    );
    const got = bEvents.filter(
      (e) => e.name === 'im.message' && e.body.body === 'hi bob, through the gateway',
    );
    assert.equal(got.length, 1);
    const m = got[0]!.body;
    assert.equal(m.account, bobAcc);
    assert.equal(m.from, 'alice@example.test');
    assert.equal(m.originId, 'gw-c-1');
    assert.equal(typeof m.stanzaId, 'string');
    assert.ok(!Number.isNaN(Date.parse(m.at)));
    // Alice's presence reached B, coalesced into im.presence batches.
    await eventually(
      'alice presence at B',
      () =>
        bEvents.some(
          (e) => e.name === 'im.presence' && e.body.items.some((i: any) => i.jid === 'alice@example.test'),
        ),
      WAIT,
    );
  });

  test('a handset and a plain XMPP client, both ways; carbons from a second client of the same account', async () => {
    const b = open[1]!;
    const bEvents: Array<{ name: string; body: any }> = [];
    b.on('event', (e) => bEvents.push({ name: e.name, body: e.body }));
    await carol.send(
      xml(
        'message',
        { type: 'chat', to: 'bob@example.test', id: 'carol-1' },
        xml('body', {}, 'hi from carol'),
      ),
    );
    await eventually(
      'carol → handset B',
      () => bEvents.some((e) => e.name === 'im.message' && e.body.body === 'hi from carol'),
      WAIT,
    );
    const fromCarol = bEvents.find((e) => e.name === 'im.message' && e.body.body === 'hi from carol')!.body;
    assert.equal(fromCarol.from, 'carol@example.test');
    assert.equal(fromCarol.direction, 'in');

    await b.request('im.send', {
      account: bobAcc,
      to: 'carol@example.test',
      body: 'hi carol',
      clientId: 'gw-c-3',
    });
    await eventually('handset B → carol', () => carolGot.includes('hi carol'), WAIT);

    const bob2 = await plainClient('bob', 'laptop');
    await bob2.iqCaller.set(xml('enable', { xmlns: 'urn:xmpp:carbons:2' }));
    await bob2.send(xml('presence', {}));
    await bob2.send(
      xml(
        'message',
        { type: 'chat', to: 'carol@example.test', id: 'bob2-1' },
        xml('body', {}, 'from my laptop'),
      ),
    );
    await eventually(
      'sent carbon at handset B',
      () => bEvents.some((e) => e.name === 'im.message' && e.body.body === 'from my laptop'),
      WAIT,
    );
    const carbon = bEvents.find((e) => e.name === 'im.message' && e.body.body === 'from my laptop')!.body;
    assert.equal(carbon.direction, 'out');
    assert.equal(carbon.carbon, true);
    assert.equal(carbon.to, 'carol@example.test');
    await eventually('carol gets the laptop message', () => carolGot.includes('from my laptop'), WAIT);
    await bob2.stop();
  });

  test('a handset offline while messages arrive catches up exactly once, in order', async () => {
    const a = open[0]!;
    let b = open[1]!;
    const app = new ChatApp(b, bobAcc);
    await app.start();
    await a.request('im.send', {
      account: aliceAcc,
      to: 'bob@example.test',
      body: 'off-0',
      clientId: 'off-0',
    });
    await eventually('off-0 live', () => app.bodies('off-').length === 1, WAIT);

    await b.close();
    const sender = new ChatSender(a, aliceAcc);
    const missed = ['off-1', 'off-2', 'off-3', 'off-4'];
    for (const body of missed) await sender.send('bob@example.test', body, body);
    b = await connect(devB);
    // A new device session (not resumed): the application catches up from its cursor.
    app.attach(b);
    void app.sync();
    await eventually('catch-up after the reconnect', () => app.bodies('off-').length === 5, WAIT);
    await app.idle();
    await sender.send('bob@example.test', 'off-5', 'off-5');
    await eventually('off-5 live', () => app.bodies('off-').length === 6, WAIT);
    await app.idle();
    assert.deepEqual(app.bodies('off-'), ['off-0', ...missed, 'off-5']);
    assert.ok(app.catchups >= 1);
  });

  test('the accounts come back when the handset reconnects: no new im.login', async () => {
    let b = open.at(-1)!;
    carolPresence.length = 0;
    await b.close();
    // The edge ends the session after its resume window; the transport then lets bob's XMPP session
    // linger and closes it: carol sees bob go offline without anybody logging out.
    await eventually(
      'bob unavailable at carol',
      () => carolPresence.some((p) => p.type === 'unavailable'),
      WAIT,
    );
    carolPresence.length = 0;
    b = await connect(devB);
    const events: Array<{ name: string; body: any }> = [];
    b.on('event', (e) => events.push({ name: e.name, body: e.body }));
    // No request at all from B: the new device session alone brings the account back.
    await eventually(
      'bob available again at carol',
      () => carolPresence.some((p) => p.type === 'available'),
      WAIT,
    ).catch((err) => {
      if (process.env.IM_DEBUG)
        console.error(
          gw.stdout
            .filter((l) => /"msg":"(session|xmpp|im)/.test(l))
            .slice(-40)
            .join('\n'),
        );
      throw err;
    });
    await eventually(
      'im.state online pushed',
      () =>
        events.some((e) => e.name === 'im.state' && e.body.account === bobAcc && e.body.state === 'online'),
      WAIT,
    );
    await carol.send(
      xml('message', { type: 'chat', to: 'bob@example.test' }, xml('body', {}, 'welcome back')),
    );
    await eventually(
      'pushed without any request',
      () => events.some((e) => e.name === 'im.message' && e.body.body === 'welcome back'),
      WAIT,
    );
  });

  test('after a gateway restart the accounts are back without im.login', async () => {
    for (const h of open.splice(0)) await h.close();
    await gw.stop();
    carolPresence.length = 0;
    gw = await start();
    const b = await connect(devB);
    const events: Array<{ name: string; body: any }> = [];
    b.on('event', (e) => events.push({ name: e.name, body: e.body }));
    await eventually(
      'bob back online at carol',
      () => carolPresence.some((p) => p.type === 'available'),
      WAIT,
    );
    await carol.send(
      xml('message', { type: 'chat', to: 'bob@example.test' }, xml('body', {}, 'after restart')),
    );
    await eventually(
      'pushed after the restart',
      () => events.some((e) => e.name === 'im.message' && e.body.body === 'after restart'),
      WAIT,
    );
    const list = await b.request<any>('im.accounts', {});
    assert.deepEqual(
      list.accounts.map((x: any) => x.account),
      [bobAcc],
    );
    const roster = await b.request<any>('im.roster', { account: bobAcc });
    assert.equal(roster.items.length, 2);
  });

  test('Prosody restarted mid-conversation: every message at B once, in order', async () => {
    const a = await connect(devA);
    const b = open.at(-2) === a ? open[0]! : open.find((h) => h !== a)!;
    const app = new ChatApp(b, bobAcc);
    await app.start();
    const sender = new ChatSender(a, aliceAcc);
    const bodies = Array.from({ length: 16 }, (_, i) => `pr-${String(i).padStart(2, '0')}`);
    let restarted = false;
    const sending = (async () => {
      for (const [i, body] of bodies.entries()) {
        await sender.send('bob@example.test', body, `${body}-id`);
        if (i === 5) {
          await eventually('the first messages at B', () => app.bodies('pr-').length >= 3, WAIT);
          await prosody.restart();
          restarted = true;
        }
      }
    })();
    await sending;
    assert.ok(restarted);
    await eventually('every message at B', () => app.bodies('pr-').length >= bodies.length, {
      timeoutMs: 90_000,
    });
    await app.idle();
    // Anything late (a resend) has had its chance: one more catch-up finds nothing new.
    await app.sync();
    assert.deepEqual(app.bodies('pr-'), bodies);
    assert.equal(new Set(app.timeline.map((m) => m.originId ?? m.stanzaId)).size, app.timeline.length);
    // The conversation goes on afterwards.
    const after = await persistentRequest<any>(a, 'im.send', {
      account: aliceAcc,
      to: 'bob@example.test',
      body: 'pr-after',
      clientId: 'pr-after',
    });
    assert.equal(after.clientId, 'pr-after');
    await eventually('pr-after at B', () => app.bodies('pr-after').length === 1, WAIT);
  });
});

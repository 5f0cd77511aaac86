/**
 * The new-mail hook (server/transport/mail/push-hook.ts) with a real Dovecot
 * calling it through its push_notification plugin and docs/dovecot/mmgw-push.lua:
 *
 *  - through a gateway process, against a Dovecot that offers no IDLE (so
 *    nothing but the hook can bring mail.new within the test): each message
 *    arrives once; the hook refuses a wrong token and a bad body;
 *  - a Dovecot whose hook is refused (wrong token): IMAP IDLE still pushes;
 *  - in-process, with IDLE and the hook both firing for the same messages:
 *    each mail.new goes out exactly once.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import { Registry } from 'prom-client';
import type { Handset } from '../../device-protocol/handset.ts';
import { InProcessBus } from '../../server/bus/index.ts';
import { type OpsServer, startOpsServer } from '../../server/ops/http.ts';
import { MAIL_PUSH_PATH, mailPushHook } from '../../server/transport/mail/push-hook.ts';
import { eventually } from '../../testing/index.ts';
import { type DovecotServer, startDovecot } from '../harness/dovecot.ts';
import { type Gateway, provisionDevice, startGateway } from '../harness/gateway.ts';
import { type SmtpPeer, startSmtpPeer } from '../harness/smtp-peer.ts';
import { handsetFor, WAIT } from './e2e-suite.ts';
import { ALICE, BOB, type MailFixture, mailAccountBody, startMailFixture } from './mail-fixture.ts';

const TOKEN = 'hook-token-for-tests-0123456789';

/** Dovecot's capabilities less IDLE: imapflow then only polls with NOOP every 2 minutes. */
const NO_IDLE = (
  'IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE SORT THREAD=REFERENCES MULTIAPPEND UNSELECT ' +
  'CHILDREN NAMESPACE UIDPLUS LIST-EXTENDED I18NLEVEL=1 CONDSTORE QRESYNC ESEARCH SEARCHRES WITHIN ' +
  'LIST-STATUS BINARY MOVE SPECIAL-USE LITERAL+'
).split(' ');

const message = (subject: string) =>
  `From: hook test <t@example.test>\r\nSubject: ${subject}\r\n\r\n${subject}\r\n`;

describe('new-mail hook through the gateway', () => {
  let gw: Gateway;
  let dataDir: string;
  let noIdle: DovecotServer;
  let refused: DovecotServer;
  let noRoute: DovecotServer;
  let smtp: SmtpPeer;
  let h: Handset;
  let aliceAccount: string;
  const events: { name: string; body: any }[] = [];
  const newOf = (account: string) =>
    events
      .filter((e) => e.name === 'mail.new' && e.body.account === account)
      .map((e) => e.body.header.uid as number);

  const accountBody = (dovecot: DovecotServer, u: { user: string; password: string }) =>
    mailAccountBody(dovecot, smtp, u);

  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'mmgw-push-hook-'));
    gw = await startGateway({ dataDir, env: { MMGW_MAIL_PUSH_TOKEN: TOKEN } });
    const url = `${gw.adminUrl}${MAIL_PUSH_PATH}`;
    noIdle = await startDovecot({
      users: [ALICE, BOB],
      capabilities: NO_IDLE,
      pushHook: { url, token: TOKEN },
    });
    refused = await startDovecot({ users: [ALICE], pushHook: { url, token: 'not-the-gateways-token-000' } });
    // A hook URL the gateway has no route for (as on a gateway started without MMGW_MAIL_PUSH_TOKEN).
    noRoute = await startDovecot({
      users: [ALICE],
      pushHook: { url: `${gw.adminUrl}/hooks/elsewhere`, token: TOKEN },
    });
    smtp = await startSmtpPeer({ dovecot: noIdle });
    const dev = await provisionDevice(dataDir);
    h = handsetFor(gw, dev);
    h.on('event', (e) => events.push({ name: e.name, body: e.body }));
    await h.connect();
  });
  after(async () => {
    await h?.close().catch(() => {});
    await gw?.stop();
    await smtp?.stop();
    await noIdle?.stop({ removeDir: true });
    await refused?.stop({ removeDir: true });
    await noRoute?.stop({ removeDir: true });
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  test('without IDLE on the server, the hook alone brings each message as mail.new, once', async () => {
    const { account } = await h.request<any>('mail.account.add', accountBody(noIdle, ALICE));
    aliceAccount = account;
    await h.request('mail.sync', { account, folder: 'INBOX', limit: 10 });
    // The first one may come from the watcher's connect catch-up or the hook; after it the watcher is connected.
    const u0 = await noIdle.appendMessage(ALICE.user, 'INBOX', message('first'));
    await eventually('the first mail.new', () => newOf(account).includes(u0), WAIT);
    const later: number[] = [];
    for (const s of ['second', 'third', 'fourth'])
      later.push(await noIdle.appendMessage(ALICE.user, 'INBOX', message(s)));
    await eventually('three mail.new by hook', () => later.every((u) => newOf(account).includes(u)), WAIT);
    // A last one: a watcher pushes in UID order, so a duplicate of the earlier ones would be here by now.
    const last = await noIdle.appendMessage(ALICE.user, 'INBOX', message('last'));
    await eventually('the last mail.new', () => newOf(account).includes(last), WAIT);
    assert.deepEqual(newOf(account), [u0, ...later, last]);
    const pushed = events.find((e) => e.name === 'mail.new' && e.body.header.uid === later[0])!.body;
    assert.equal(pushed.folder, 'INBOX');
    assert.equal(pushed.header.subject, 'second');
    assert.equal(pushed.header.preview, 'second');
  });

  test('mail delivered by the SMTP peer arrives by hook too', async () => {
    const { account } = await h.request<any>('mail.account.add', accountBody(noIdle, BOB));
    await h.request('mail.sync', { account, folder: 'INBOX', limit: 10 });
    const before = newOf(account).length;
    await h.request('mail.send', {
      account: aliceAccount,
      to: [BOB.user],
      subject: 'via smtp',
      text: 'hi bob',
      clientId: 'c-hook-1',
    });
    await eventually('mail.new for bob', () => newOf(account).length > before, WAIT);
    const got = events.filter((e) => e.name === 'mail.new' && e.body.account === account).at(-1)!.body;
    assert.equal(got.header.subject, 'via smtp');
  });

  test('the hook wants its token and a JSON body', async () => {
    const post = (headers: Record<string, string>, body: string, method = 'POST') =>
      fetch(`${gw.adminUrl}${MAIL_PUSH_PATH}`, { method, headers, ...(method === 'GET' ? {} : { body }) });
    const good = JSON.stringify({ user: 'nobody@example.test', folder: 'INBOX', 'imap-uid': 1 });
    assert.equal((await post({}, good)).status, 401);
    assert.equal((await post({ authorization: 'Bearer wrong-token-wrong-token' }, good)).status, 401);
    const bad = await post({ authorization: `Bearer ${TOKEN}` }, '{"folder":"INBOX"}');
    assert.equal(bad.status, 400);
    assert.equal(((await bad.json()) as any).error.code, 'request.bad_input');
    assert.equal((await post({ authorization: `Bearer ${TOKEN}` }, 'not json')).status, 400);
    assert.equal((await post({ authorization: `Bearer ${TOKEN}` }, '', 'GET')).status, 405);
    assert.equal((await post({ authorization: `Bearer ${TOKEN}` }, good)).status, 202);
    // The OX driver's form: PUT, the token as the password of the URL's user info.
    const basic = `Basic ${Buffer.from(`dovecot:${TOKEN}`).toString('base64')}`;
    assert.equal((await post({ authorization: basic }, good, 'PUT')).status, 202);
    const metrics = await (await fetch(`${gw.adminUrl}/metrics`)).text();
    assert.match(metrics, /mmgw_mail_push_hooks_total\{[^}]*result="unauthorized"[^}]*\} [1-9]/);
  });

  test('a hook refused (401) or with no route (404) is answered at once: delivery is not held up', async () => {
    for (const [dovecot, status] of [
      [refused, 401],
      [noRoute, 404],
    ] as const) {
      const started = performance.now();
      await dovecot.appendMessage(ALICE.user, 'INBOX', message(`answered ${status}`));
      const ms = performance.now() - started;
      // Answered before the body was read, Dovecot's client waited ~6 s for it (mail.send took that long).
      assert.ok(ms < 3000, `hook answered ${status}: the APPEND took ${Math.round(ms)} ms`);
      await eventually(`Dovecot logs the ${status}`, () =>
        readFileSync(join(dovecot.dir, 'dovecot.log'), 'utf8').includes(`answered ${status}`),
      );
    }
  });

  test('a server whose hook is refused still pushes through IDLE', async () => {
    const { account } = await h.request<any>('mail.account.add', accountBody(refused, ALICE));
    await h.request('mail.sync', { account, folder: 'INBOX', limit: 10 });
    const u0 = await refused.appendMessage(ALICE.user, 'INBOX', message('warm'));
    await eventually('warm-up mail.new', () => newOf(account).includes(u0), WAIT);
    const u1 = await refused.appendMessage(ALICE.user, 'INBOX', message('by idle'));
    await eventually('mail.new by IDLE', () => newOf(account).includes(u1), WAIT);
    assert.deepEqual(newOf(account), [u0, u1]);
  });
});

describe('new-mail hook and IDLE together', () => {
  let fx: MailFixture;
  let ops: OpsServer;
  let bus: InProcessBus;
  let alice: string;
  const A = 'dev-hook-a';
  const newUids = () =>
    fx.pushed
      .filter((p) => p.deviceId === A && p.name === 'mail.new')
      .map((p) => (p.body as any).header.uid as number);

  before(async () => {
    bus = new InProcessBus();
    const logger = pino({ level: 'silent' });
    ops = await startOpsServer({
      port: 0,
      host: '127.0.0.1',
      logger,
      metrics: new Registry(),
      readiness: () => ({ ready: true, reasons: [] }),
    });
    ops.use(mailPushHook({ bus, token: TOKEN, logger }));
    fx = await startMailFixture({
      serviceOptions: { bus, watcherBackoffMs: 100 },
      dovecotOptions: { pushHook: { url: `http://127.0.0.1:${ops.port}${MAIL_PUSH_PATH}`, token: TOKEN } },
    });
    alice = await fx.addAccount(A, ALICE);
  });
  after(async () => {
    await fx?.stop();
    await ops?.close();
    await bus?.close();
  });

  test('both fire for every message; each mail.new goes out exactly once', async () => {
    await fx.call(A, 'mail.sync', { account: alice, folder: 'INBOX', limit: 10 });
    const watcher = fx.service.deps.watchers!.get(alice)!;
    await watcher.ready;
    const hooks = watcher.triggers.hook;
    const idles = watcher.triggers.idle;
    const uids: number[] = [];
    for (let i = 0; i < 3; i++)
      uids.push(await fx.dovecot.appendMessage(ALICE.user, 'INBOX', message(`both ${i}`)));
    await eventually('three mail.new', () => uids.every((u) => newUids().includes(u)), WAIT);
    // Every APPEND called the hook, and IDLE reported them as well (after its delay).
    await eventually('three hook calls', () => watcher.triggers.hook >= hooks + 3, WAIT);
    await eventually('an IDLE EXISTS', () => watcher.triggers.idle > idles, WAIT);
    await watcher.settled();
    assert.deepEqual(newUids(), uids);
    const { pushedBy } = watcher;
    assert.equal(pushedBy.connect + pushedBy.idle + pushedBy.hook, 3);
  });

  test('a hook for another user or an older UID pokes no watcher', async () => {
    const watchers = fx.service.deps.watchers!;
    assert.equal(watchers.notify({ user: 'someone@example.test', folder: 'INBOX' }), 0);
    assert.equal(watchers.notify({ user: ALICE.user, folder: 'Sent' }), 0);
    assert.equal(watchers.notify({ user: ALICE.user.toUpperCase(), folder: 'INBOX', uid: 1 }), 0);
    assert.equal(watchers.notify({ user: ALICE.user, folder: 'INBOX', host: 'elsewhere.example' }), 0);
  });
});

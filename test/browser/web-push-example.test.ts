/**
 * The browser example of Web Push wake-ups (examples/web-push/) is real code:
 * its page script and service worker typecheck against the DOM and WebWorker
 * libraries, bundle, and run in Chromium against a real gateway, a private
 * Dovecot, the SMTP peer and the local Web Push service (it decrypts what the
 * gateway sends).
 *
 * The page subscribes with the gateway's VAPID key and registers the
 * subscription; the device goes away; mail reaches Dovecot; the gateway's
 * wake-up, as the push service decrypted it, is delivered to the service
 * worker through the DevTools protocol (ServiceWorker.deliverPushMessage);
 * the notification it shows and the message it posts to the page are
 * checked. Chromium's push service is Google's, not reachable from a test on
 * loopback: PushManager.subscribe is stood in for by one that answers a
 * subscription of the local push service and records what the page asked.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { buildSync } from 'esbuild';
import type { CDPSession, Page } from 'playwright-core';
import type { Handset } from '../../device-protocol/handset.ts';
import { eventually } from '../../testing/index.ts';
import { launchBrowser, type TestBrowser } from '../harness/browser.ts';
import type { Gateway } from '../harness/gateway.ts';
import { ROOT } from '../harness/gateway.ts';
import { ADMIN, ApiClient, addProfiledDevice } from '../integration/admin-api-helpers.ts';
import { WAIT } from '../integration/e2e-suite.ts';
import { BOB, mailAccountBody } from '../integration/mail-fixture.ts';
import * as wake from '../integration/push-fixture.ts';

const EXAMPLE = `${ROOT}/examples/web-push`;

const bundle = (entry: string, globalName?: string) =>
  buildSync({
    entryPoints: [entry],
    bundle: true,
    format: 'iife',
    ...(globalName ? { globalName } : {}),
    platform: 'browser',
    target: 'es2022',
    write: false,
  }).outputFiles[0]!.text;

/** The app's origin: its page, the SDK and the example's page script, the service worker. */
function serveApp(): Promise<Server> {
  const files: Record<string, string> = {
    '/sdk.js': bundle(`${ROOT}/device-protocol/handset.ts`, 'mmgwSdk'),
    '/wake-app.js': bundle(`${EXAMPLE}/wake-app.ts`, 'wakeApp'),
    '/wake-worker.js': bundle(`${EXAMPLE}/wake-worker.ts`),
  };
  const page =
    '<!doctype html><title>handset</title><script>var __name = (f) => f;</script>' +
    '<script src="/sdk.js"></script><script src="/wake-app.js"></script>';
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const js = files[path];
    if (path === '/') res.writeHead(200, { 'content-type': 'text/html' }).end(page);
    else if (js) res.writeHead(200, { 'content-type': 'text/javascript' }).end(js);
    else res.writeHead(404).end();
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

/** Runs in the page: the example's enableWakeups with the SDK, wake-ups collected in `window.wakes`. */
async function subscribeInPage(arg: { url: string; imei: string; secret: string }) {
  const w = globalThis as any;
  w.wakes = [];
  const h = new w.mmgwSdk.Handset({ url: arg.url, imei: arg.imei, secret: arg.secret, transport: 'ws' });
  await h.connect();
  try {
    const id = await w.wakeApp.enableWakeups(h, {
      workerUrl: '/wake-worker.js',
      onWake: (x: unknown) => w.wakes.push(x),
    });
    return { id, key: await h.pushVapidKey() };
  } finally {
    await h.close();
  }
}

describe('the Web Push example in Chromium', () => {
  const peers: Partial<wake.WakePeers> = {};
  /** Service worker registrations as the DevTools protocol reports them. */
  const registrations: { registrationId: string; scopeURL: string }[] = [];
  const open: Handset[] = [];
  let gw: Gateway;
  let app: Server;
  let origin: string;
  let browser: TestBrowser;
  let page: Page;
  let cdp: CDPSession;

  before(async () => {
    await wake.startWakePeers(peers);
    gw = await wake.startWakeGateway(peers.push!.caFile, 1000);
    app = await serveApp();
    origin = `http://127.0.0.1:${(app.address() as AddressInfo).port}`;
    browser = await launchBrowser();
    await browser.context.grantPermissions(['notifications'], { origin });
    page = await browser.newPage();
    cdp = await browser.context.newCDPSession(page);
    cdp.on('ServiceWorker.workerRegistrationUpdated', ({ registrations: rs }) => registrations.push(...rs));
    await cdp.send('ServiceWorker.enable');
  });
  after(async () => {
    for (const h of open) await h.close().catch(() => {});
    await browser?.close();
    await new Promise((resolve) => (app ? app.close(resolve) : resolve(undefined)));
    await gw?.stop();
    await wake.stopWakePeers(peers);
  });

  test('page script and service worker typecheck against the DOM and WebWorker libraries', () => {
    for (const project of ['tsconfig.json', 'tsconfig.worker.json']) {
      const tsc = spawnSync('npx', ['tsc', '-p', `${EXAMPLE}/${project}`], { cwd: ROOT, encoding: 'utf8' });
      assert.equal(tsc.status, 0, `${project}: ${tsc.stdout}${tsc.stderr}`);
    }
  });

  test('subscribe with the gateway’s key, register; a wake-up shows the sender and subject and tells the page', async () => {
    const { dovecot, smtp, push } = peers as wake.WakePeers;
    const api = await ApiClient.as(gw.adminUrl, ADMIN.name, ADMIN.password);
    assert.equal((await api.call('POST', '/operators', { id: 'op1', name: 'Operator 1' })).status, 201);
    await wake.addWakeProfiles(api, { shows: { wakeupPreview: 'sender_subject' } });
    const dev = await addProfiledDevice(api, 'op1', 'shows');
    // The device's mail, synced from Node: its INBOX is watched from then on.
    const setup = await wake.connectKept(gw, dev, open);
    const { account } = await setup.request<any>('mail.account.add', mailAccountBody(dovecot, smtp, BOB));
    await setup.request('mail.sync', { account, folder: 'INBOX', limit: 50 });
    await setup.close();

    const sub = push.subscribe();
    await page.addInitScript((s) => {
      const w = globalThis as any;
      w.subscribeAsked = [];
      PushManager.prototype.getSubscription = async () => null;
      PushManager.prototype.subscribe = async (options?: PushSubscriptionOptionsInit) => {
        const key = options?.applicationServerKey as Uint8Array;
        w.subscribeAsked.push({ userVisibleOnly: options?.userVisibleOnly, key: Array.from(key) });
        return { endpoint: s.endpoint, options: {}, toJSON: () => s } as unknown as PushSubscription;
      };
    }, sub);
    await page.goto(`${origin}/`);
    const { id, key } = await page.evaluate(subscribeInPage, { url: gw.url, ...dev });
    assert.match(id, /^w/);
    const asked = await page.evaluate(() => (globalThis as any).subscribeAsked);
    assert.deepEqual(asked, [{ userVisibleOnly: true, key: Array.from(Buffer.from(key, 'base64url')) }]);
    const listed = await wake.connectKept(gw, dev, open);
    assert.deepEqual(
      (await listed.listPush()).map((r) => [r.id, r.endpoint]),
      [[id, sub.endpoint]],
    );
    await listed.close();

    await dovecot.appendMessage(
      BOB.user,
      'INBOX',
      'From: Alice Example <alice@example.test>\r\nSubject: Lunch at noon?\r\n\r\nsee you\r\n',
    );
    await eventually('the wake-up at the push service', () => push.received.length > 0, WAIT);
    const payload = push.received[0]!.payload as Record<string, unknown>;
    assert.equal(payload.from, 'Alice Example');

    await eventually(
      'the worker registered',
      () => registrations.some((r) => r.scopeURL === `${origin}/`),
      WAIT,
    );
    const { registrationId } = registrations.find((r) => r.scopeURL === `${origin}/`)!;
    await cdp.send('ServiceWorker.deliverPushMessage', {
      origin,
      registrationId,
      data: JSON.stringify(payload),
    });
    await eventually(
      'the page told of the wake-up',
      async () => (await page.evaluate(() => (globalThis as any).wakes.length)) > 0,
      WAIT,
    );
    assert.deepEqual(await page.evaluate(() => (globalThis as any).wakes), [payload]);
    const shown = await page.evaluate(async () => {
      const reg = await navigator.serviceWorker.ready;
      return (await reg.getNotifications()).map((n) => ({ title: n.title, body: n.body, tag: n.tag }));
    });
    assert.deepEqual(shown, [{ title: 'Alice Example', body: 'Lunch at noon?', tag: 'mmgw-wake' }]);

    // A push that is no wake-up still shows one (the browser demands it), generic; it replaces the last.
    await cdp.send('ServiceWorker.deliverPushMessage', { origin, registrationId, data: 'not json' });
    await eventually(
      'the page told of the stray push',
      async () => (await page.evaluate(() => (globalThis as any).wakes.length)) > 1,
      WAIT,
    );
    assert.equal(await page.evaluate(() => (globalThis as any).wakes[1]), null);
    const after = await page.evaluate(async () => {
      const reg = await navigator.serviceWorker.ready;
      return (await reg.getNotifications()).map((n) => ({ title: n.title, body: n.body }));
    });
    assert.deepEqual(after, [{ title: 'New mail', body: 'Open the app to see what is new' }]);
    assert.deepEqual(
      browser.pageErrors.filter((e) => e.startsWith('pageerror:')),
      [],
    );
  });
});

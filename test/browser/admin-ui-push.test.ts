/**
 * Wake-ups in the admin web UI (issue 14), in real headless Chromium against
 * a real gateway process with a Web Push service and Dovecot on loopback: a
 * handset registers a Web Push subscription and goes away, mail wakes it; the
 * usage report shows the wake-up in its table per channel; the devices page
 * shows the device's channel redacted (the push service's origin, never the
 * endpoint's path or the keys) and removing it there removes it for the
 * handset too. Screenshots under test/output/screenshots/.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Page } from 'playwright-core';
import type { Handset } from '../../device-protocol/handset.ts';
import { eventually } from '../../testing/index.ts';
import { launchBrowser, type TestBrowser } from '../harness/browser.ts';
import { type DovecotServer, startDovecot } from '../harness/dovecot.ts';
import { type Gateway, provisionDevice } from '../harness/gateway.ts';
import { type PushService, type PushSubscriptionJson, startPushService } from '../harness/push-service.ts';
import { type SmtpPeer, startSmtpPeer } from '../harness/smtp-peer.ts';
import { ADMIN } from '../integration/admin-api-helpers.ts';
import { WAIT as WAIT_OPTIONS } from '../integration/e2e-suite.ts';
import { BOB } from '../integration/mail-fixture.ts';
import {
  addSyncedMail,
  connectKept,
  deliverMail,
  startWakeGateway,
  stopAll,
} from '../integration/push-fixture.ts';

/** Generous: only there so that a broken UI fails instead of hanging. */
const WAIT = { timeout: 30_000 };

describe('wake-ups in the admin web UI', () => {
  let dovecot: DovecotServer;
  let smtp: SmtpPeer;
  let push: PushService;
  let gw: Gateway;
  let browser: TestBrowser;
  let page: Page;
  let dev: { imei: string; secret: string };
  let sub: PushSubscriptionJson;
  let id: string;
  const open: Handset[] = [];

  before(async () => {
    dovecot = await startDovecot({ users: [BOB] });
    smtp = await startSmtpPeer({ dovecot });
    push = await startPushService();
    gw = await startWakeGateway(push.caFile, 500);
    dev = await provisionDevice(gw.dataDir);
    browser = await launchBrowser();
    page = await browser.newPage();
    page.setDefaultTimeout(WAIT.timeout);
    // The confirmation before a remove is accepted.
    page.on('dialog', (d) => void d.accept());
  });
  after(async () => {
    await browser?.close();
    await stopAll(
      open,
      () => gw?.stop(),
      () => push?.stop(),
      () => smtp?.stop(),
      () => dovecot?.stop({ removeDir: true }),
    );
  });

  test('a handset registers Web Push and goes away; mail wakes it', async () => {
    const h = await connectKept(gw, dev, open);
    await addSyncedMail(h, dovecot, smtp);
    sub = push.subscribe();
    id = await h.registerPush(sub);
    await h.close();
    await deliverMail(dovecot, 'wake the sleeper');
    await eventually(
      'a wake-up at the push service',
      () => push.received.some((r) => r.status === 201),
      WAIT_OPTIONS,
    );
  });

  test('log in; the usage report shows the wake-up per channel', async () => {
    await page.goto(`${gw.adminUrl}/ui/`);
    await page.fill('input[name=name]', ADMIN.name);
    await page.fill('input[name=password]', ADMIN.password);
    await page.click('button[type=submit]');
    await page.locator('nav.nav a[data-nav=devices]').waitFor();
    // The recorder sends its counters within a second or so: load the report until it has them
    // (a reload each time: going to the URL the page is at changes nothing).
    await page.goto(`${gw.adminUrl}/ui/#/usage`);
    await eventually(
      'the Web Push row of the wake-up table',
      async () => {
        await page.reload();
        await page.locator('#wakeup-table tbody tr').first().waitFor();
        return (await page.locator('#wakeup-table tr[data-channel=webpush]').count()) === 1;
      },
      WAIT_OPTIONS,
    );
    const cells = await page.locator('#wakeup-table tr[data-channel=webpush] td').allInnerTexts();
    assert.deepEqual(cells.slice(0, 4), ['Web Push', '1', '0', '0']);
    assert.match(cells[4] ?? '', /^[\d.]+ s$/, 'a mean latency');
    assert.match(cells[5] ?? '', /^≤ [\d.]+ s$/, 'p50 as its bucket bound');
    await browser.screenshot(page, 'wakeups-usage');
  });

  test('the device’s channel, redacted, on the devices page; removing it there removes it for the handset', async () => {
    await page.goto(`${gw.adminUrl}/ui/#/devices`);
    await page.locator(`tr[data-imei="${dev.imei}"] button:has-text("Wake-ups")`).click();
    const row = page.locator(`#wakeup-channel-table tr[data-id="${id}"]`);
    await row.waitFor();
    const text = await page.locator('#wakeup-channels').innerText();
    assert.match(text, /Web Push/);
    assert.ok(text.includes(new URL(sub.endpoint).origin), 'the push service is named');
    for (const secret of [new URL(sub.endpoint).pathname, sub.keys.p256dh, sub.keys.auth])
      assert.ok(!text.includes(secret), `${secret} is not shown`);
    await browser.screenshot(page, 'wakeups-device');
    await row.locator('button:has-text("Remove")').click();
    await page.locator('#wakeup-channel-table td.empty').waitFor();
    const h = await connectKept(gw, dev, open);
    assert.deepEqual(await h.listPush(), []);
    await h.close();
  });
});

/**
 * The admin web UI in real headless Chromium against a real gateway process:
 * log in, reference data, add a device (a bad IMEI is refused inline), import
 * a CSV with a bad row (the preview shows it before anything is written), a
 * handset's log lines arriving live, the usage chart from real counters, the
 * node list and the audit log. Every page is saved as a screenshot under
 * test/output/screenshots/.
 *
 * The steps share one gateway and one browser and run in order.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Page } from 'playwright-core';
import WebSocket from 'ws';
import { Handset } from '../../device-protocol/handset.ts';
import { imeiWithCheckDigit } from '../../server/store/imei.ts';
import { eventually } from '../../testing/index.ts';
import { launchBrowser, type TestBrowser } from '../harness/browser.ts';
import { type Gateway, startGateway } from '../harness/gateway.ts';

const ADMIN = { name: 'root', password: 'browser-test-password-1' };
/** The sections an operator sees; an admin also sees Users. */
const OPERATOR_NAV = ['Devices', 'Reference data', 'Usage report', 'System monitor', 'Audit log'];
/** Generous: only there so that a broken UI fails instead of hanging. */
const WAIT = { timeout: 30_000 };

/** IMEIs unique to this run (different TAC block per process). */
const base = String(process.pid % 100_000).padStart(5, '0');
const imei = (n: number) => imeiWithCheckDigit(`35${base}${String(n).padStart(7, '0')}`);
/** Same digits as imei(n) with a wrong check digit. */
const badLuhn = (n: number) => {
  const good = imei(n);
  return good.slice(0, 14) + String((Number(good[14]) + 1) % 10);
};

describe('admin web UI in Chromium', () => {
  let gw: Gateway;
  let browser: TestBrowser;
  let page: Page;
  let token: string;
  let deviceSecret = '';
  const deviceImei = imei(1);

  async function apiGet(path: string): Promise<{ status: number; body: any }> {
    return apiSend('GET', path);
  }

  /** A call of the REST API as the bootstrap admin (or anonymous with `asAdmin` false). */
  async function apiSend(
    method: string,
    path: string,
    body?: unknown,
    asAdmin = true,
  ): Promise<{ status: number; body: any }> {
    const headers: Record<string, string> = asAdmin ? { authorization: `Bearer ${token}` } : {};
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(`${gw.adminUrl}/api/v1${path}`, {
      method,
      headers,
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined };
  }

  async function go(hash: string): Promise<void> {
    await page.goto(`${gw.adminUrl}/ui/${hash}`);
  }

  /** Logs out (when logged in) and in again as someone else; resolves once the console shows. */
  async function logInAs(name: string, password: string): Promise<void> {
    if ((await page.locator('button.logout').count()) > 0) await page.click('button.logout');
    await page.fill('input[name=name]', name);
    await page.fill('input[name=password]', password);
    await page.click('button[type=submit]');
    await page.locator('nav.nav a').first().waitFor();
  }

  // The monitor's last hour sampled every second, so that its charts fill within the test.
  const configDir = mkdtempSync(join(tmpdir(), 'mmgw-admin-ui-'));
  const configFile = join(configDir, 'mmgw.json');
  writeFileSync(configFile, JSON.stringify({ admin: { monitorSampleMs: 1000 } }));

  before(async () => {
    gw = await startGateway({
      env: { MMGW_ADMIN_NAME: ADMIN.name, MMGW_ADMIN_PASSWORD: ADMIN.password, MMGW_CONFIG: configFile },
    });
    browser = await launchBrowser();
    page = await browser.newPage();
    page.setDefaultTimeout(WAIT.timeout);
    // Confirmation prompts (remove, reset secret, drain) are accepted.
    page.on('dialog', (d) => void d.accept());
    const res = await apiSend('POST', '/auth/login', ADMIN, false);
    assert.equal(res.status, 200, 'the bootstrap admin can log in through the API');
    token = res.body.token;
  });

  after(async () => {
    await browser?.close();
    await gw?.stop();
    rmSync(configDir, { recursive: true, force: true });
  });

  test('the UI is served from the gateway itself, with a same-origin-only policy', async () => {
    const res = await fetch(`${gw.adminUrl}/ui/`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-security-policy') ?? '', /default-src 'self'/);
    const html = await res.text();
    assert.doesNotMatch(html, /https?:\/\//, 'index.html refers to no other origin');
    const js = await (await fetch(`${gw.adminUrl}/ui/app.js`)).text();
    assert.doesNotMatch(js, /(src|href)=["']https?:/, 'the bundle loads nothing from another origin');
  });

  test('log in (a wrong password is refused)', async () => {
    await go('');
    await page.locator('input[name=name]').waitFor();
    await browser.screenshot(page, '01-login');
    await page.fill('input[name=name]', ADMIN.name);
    await page.fill('input[name=password]', 'not-the-password');
    await page.click('button[type=submit]');
    await page.locator('.error-box:not([hidden])').waitFor();
    assert.match(await page.locator('.error-box').innerText(), /wrong name or password/i);

    await page.fill('input[name=password]', ADMIN.password);
    await page.click('button[type=submit]');
    await page.locator('nav.nav a[data-nav=devices]').waitFor();
    assert.deepEqual(await page.locator('nav.nav a').allInnerTexts(), [...OPERATOR_NAV, 'Users']);
  });

  test('reference data: add an operator', async () => {
    await go('#/reference/operators');
    await page.click('#add-ref');
    await page.fill('#ref-form input[name=id]', 'acme');
    await page.fill('#ref-form input[name=name]', 'ACME Mobile');
    await page.fill('#ref-form input[name=mcc]', '001');
    await page.fill('#ref-form input[name=mnc]', '01');
    await page.click('#ref-form button[type=submit]');
    await page.locator('#ref-table tr[data-id=acme]').waitFor();
    await browser.screenshot(page, '02-reference-operators');
    const op = await apiGet('/operators/acme');
    assert.equal(op.status, 200);
    assert.equal(op.body.name, 'ACME Mobile');
    // A service profile: nested policies and a multi-choice, with the form's defaults.
    await page.click('.tabs a[href="#/reference/service-profiles"]');
    await page.click('#add-ref');
    await page.fill('#ref-form input[name=id]', 'basic');
    await page.fill('#ref-form input[name=name]', 'Basic mail');
    await page.locator('#ref-form input[name=services][value=im]').uncheck();
    await page.fill('#ref-form input[name="policies.imageQuality"]', '150');
    await page.click('#ref-form button[type=submit]');
    // The API refuses 150 and names the field; the message lands beside it.
    await page.locator('#ref-form .hint.error').waitFor();
    await browser.screenshot(page, '02-reference-service-profile-form');
    await page.fill('#ref-form input[name="policies.imageQuality"]', '55');
    await page.locator('#ref-form input[name="policies.smsWakeups"]').check();
    await page.selectOption('#ref-form select[name="policies.wakeupPreview"]', 'sender');
    await page.click('#ref-form button[type=submit]');
    await page.locator('#ref-table tr[data-id=basic]').waitFor();
    const profile = await apiGet('/service-profiles/basic');
    assert.deepEqual(profile.body.services, ['mail']);
    assert.equal(profile.body.policies.imageQuality, 55);
    assert.equal(profile.body.policies.smsWakeups, true);
    assert.equal(profile.body.policies.wakeupPreview, 'sender');
  });

  test('add a device: a bad IMEI is refused inline, a good one is added and its secret shown once', async () => {
    await go('#/devices');
    await page.click('#add-device');
    const form = page.locator('#device-form');
    await form.waitFor();

    // Too short: refused before anything is sent.
    await form.locator('input[name=imei]').fill('35123');
    await form.locator('select[name=operator]').selectOption('acme');
    await form.locator('button[type=submit]').click();
    await page.locator('#hint-imei.error').waitFor();
    assert.match(await page.locator('#hint-imei').innerText(), /must be 15 digits, got 5/);

    // Wrong Luhn check digit.
    await form.locator('input[name=imei]').fill(badLuhn(1));
    await form.locator('button[type=submit]').click();
    await page.waitForFunction(() =>
      /check digit/.test(document.querySelector('#hint-imei')?.textContent ?? ''),
    );
    assert.match(await page.locator('#hint-imei').innerText(), /check digit should be \d/);
    assert.equal(await form.locator('input[name=imei]').getAttribute('aria-invalid'), 'true');
    await browser.screenshot(page, '03-device-bad-imei');
    assert.equal(
      (await apiGet(`/devices/${badLuhn(1)}`)).status,
      404,
      'nothing was written for the bad IMEI',
    );

    await form.locator('input[name=imei]').fill(deviceImei);
    await form.locator('input[name=imsi]').fill('001010123456789');
    await form.locator('select[name=serviceProfile]').selectOption('basic');
    await form.locator('button[type=submit]').click();
    await page.locator('#device-secret').waitFor();
    deviceSecret = (await page.locator('#device-secret').innerText()).trim();
    assert.ok(deviceSecret.length >= 16, 'a secret is shown');
    await browser.screenshot(page, '04-device-secret');
    await page.locator('#secret-dialog button.primary').click();

    await page.locator(`#device-table tr[data-imei="${deviceImei}"]`).waitFor();
    const stored = await apiGet(`/devices/${deviceImei}`);
    assert.equal(stored.status, 200);
    assert.equal(stored.body.operator, 'acme');
    assert.equal(stored.body.imsi, '001010123456789');
    assert.equal(stored.body.serviceProfile, 'basic');
    await browser.screenshot(page, '05-devices');
  });

  test('import a CSV with a bad row: the preview shows it before anything is written', async () => {
    const rows = [
      'imei,imsi,operator,status',
      `${imei(2)},,acme,enabled`,
      `${badLuhn(3)},,acme,enabled`,
      `${imei(4)},,acme,disabled`,
    ];
    await go('#/devices');
    await page.click('#import-devices');
    await page.locator('#import-dialog textarea[name=csv]').fill(rows.join('\n') + '\n');
    await page.click('#import-preview-button');
    await page.locator('#import-rejected tr.rejected-row').first().waitFor();
    const rejected = await page.locator('#import-rejected tr.rejected-row').allInnerTexts();
    assert.equal(rejected.length, 1, 'exactly the bad row is rejected');
    assert.match(rejected[0]!, new RegExp(badLuhn(3)));
    assert.match(rejected[0]!, /^3\b/, 'with its line number (the header is line 1)');
    assert.match(await page.locator('#import-summary').innerText(), /3 rows checked: 2 valid, 1 rejected/);
    assert.ok(
      await page.locator('#import-write-button').isDisabled(),
      'all-or-nothing cannot write while a row is bad',
    );
    await browser.screenshot(page, '06-import-preview');
    assert.equal((await apiGet(`/devices/${imei(2)}`)).status, 404, 'the dry run wrote nothing');

    await page.locator('#import-dialog select[name=mode]').selectOption('valid-only');
    await page.click('#import-preview-button');
    await page.waitForFunction(() => {
      const b = document.querySelector<HTMLButtonElement>('#import-write-button');
      return b !== null && !b.disabled;
    });
    assert.equal(await page.locator('#import-write-button').innerText(), 'Import 2 devices');
    await page.click('#import-write-button');
    await page.locator('#import-done').waitFor();
    assert.match(await page.locator('#import-done').innerText(), /2 devices written, 1 row skipped/);
    // Written under an Idempotency-Key of its own: the job is there to fetch again.
    const job = /Import job (ui-[0-9a-f]{24})/.exec(await page.locator('#import-job').innerText())?.[1];
    assert.ok(job);
    assert.equal((await apiGet(`/devices/imports/${job}`)).body.written, 2);
    await browser.screenshot(page, '07-import-done');
    assert.equal((await apiGet(`/devices/${imei(2)}`)).status, 200);
    assert.equal((await apiGet(`/devices/${imei(4)}`)).body.status, 'disabled');
    assert.equal((await apiGet(`/devices/${badLuhn(3)}`)).status, 404);
    await page.keyboard.press('Escape');

    // The list filters by IMEI prefix.
    await go('#/devices');
    await page.fill('input[name=filter-imei]', imei(4).slice(0, 14));
    await page.waitForFunction((want) => {
      const rows = Array.from(document.querySelectorAll('#device-table tbody tr[data-imei]'));
      return rows.length === 1 && rows[0]!.getAttribute('data-imei') === want;
    }, imei(4));
    const [exported] = await Promise.all([page.waitForEvent('download'), page.click('#export-devices')]);
    const csv = readFileSync((await exported.path())!, 'utf8')
      .trim()
      .split('\n');
    assert.equal(csv.length, 2, 'header and the one device the filter matches');
    assert.match(csv[1]!, new RegExp(`^${imei(4)},`));
    // Enable the imported disabled device from its row.
    await page.locator(`#device-table tr[data-imei="${imei(4)}"] button`, { hasText: 'Enable' }).click();
    await page.locator(`#device-table tr[data-imei="${imei(4)}"] [data-status=enabled]`).waitFor();
    assert.equal((await apiGet(`/devices/${imei(4)}`)).body.status, 'enabled');
  });

  test('edit a device, give it a new secret, remove it', async () => {
    const target = imei(2);
    await go('#/devices');
    await page.fill('input[name=filter-imei]', target);
    const row = page.locator(`#device-table tr[data-imei="${target}"]`);
    await row.waitFor();
    await row.locator('button', { hasText: 'Edit' }).click();
    await page.fill('#device-form input[name=imsi]', '12345');
    await page.click('#device-form button[type=submit]');
    await page.locator('#hint-imsi.error').waitFor();
    await page.fill('#device-form input[name=imsi]', '001010000000002');
    await page.click('#device-form button[type=submit]');
    await page.locator('#device-form').waitFor({ state: 'detached' });
    assert.equal((await apiGet(`/devices/${target}`)).body.imsi, '001010000000002');

    await row.locator('button', { hasText: 'New secret' }).click();
    await page.locator('#device-secret').waitFor();
    assert.ok((await page.locator('#device-secret').innerText()).trim().length >= 16);
    await page.locator('#secret-dialog button.primary').click();

    await row.locator('button', { hasText: 'Remove' }).click();
    await row.waitFor({ state: 'detached' });
    assert.equal((await apiGet(`/devices/${target}`)).status, 404);
  });

  test("a handset connects and its log lines appear in the device's log", async () => {
    const urls: string[] = [];
    const seen = (r: { url(): string }) => void urls.push(r.url());
    page.on('request', seen);
    await go(`#/devices/${deviceImei}/log`);
    await page.locator('#live-status .live-dot:not(.off)').waitFor();
    // The live tail is an EventSource opened with a single-use ticket: the token is in no URL.
    const session = await page.evaluate(() => JSON.parse(sessionStorage.getItem('mmgw.session') ?? '{}'));
    assert.ok(
      urls.some((u) => /\/logs\/stream\?ticket=/.test(u)),
      urls.join('\n'),
    );
    assert.ok(!urls.some((u) => u.includes(session.token) || /access_token/.test(u)), urls.join('\n'));
    page.off('request', seen);
    const handset = new Handset({
      url: gw.url,
      imei: deviceImei,
      secret: deviceSecret,
      transport: 'ws',
      WebSocket,
      client: 'browser-test/1',
    });
    try {
      await handset.connect();
      await page.locator('#log-table tr.log-row[data-kind=connect]').first().waitFor();
    } finally {
      await handset.close();
    }
    await page.locator('#log-table tr.log-row[data-kind=disconnect]').first().waitFor();
    const kinds = await page
      .locator('#log-table tr.log-row')
      .evaluateAll((rows) => rows.map((r) => r.getAttribute('data-kind')));
    assert.ok(kinds.includes('connect') && kinds.includes('disconnect'), `log shows ${kinds.join(', ')}`);
    await browser.screenshot(page, '08-device-log');
  });

  test('the usage report draws a chart from the real counters', async () => {
    await go('#/usage');
    await page.locator('#usage-chart svg').waitFor();
    // Counters may be written a moment after the login: refresh until the login shows.
    const heights = await eventually(
      'a bar with a height in the usage chart',
      async () => {
        const bars = await page
          .locator('#usage-chart svg rect.bar')
          .evaluateAll((rects) => rects.map((b) => Number(b.getAttribute('height'))));
        if (bars.some((x) => x > 0)) return bars;
        await page.click('#usage-refresh');
        return undefined;
      },
      { timeoutMs: WAIT.timeout, intervalMs: 500 },
    );
    assert.ok(heights.length > 0, 'the chart has bars');
    assert.ok(
      heights.some((x) => x > 0),
      'at least one bar has a height (the login of the handset)',
    );
    const logins = await page.locator('#usage-totals .card').first().innerText();
    assert.match(logins, /^[1-9]\d*\s+Logins/);
    assert.ok((await page.locator('#usage-table tbody tr').count()) >= 1);
    assert.equal(await page.locator('#usage-downloads a.download').count(), 3);
    for (const [format, looks] of [
      ['csv', /^bucket,|logins/],
      ['json', /"rows"/],
      ['xml', /^<\?xml/],
    ] as const) {
      const [file] = await Promise.all([
        page.waitForEvent('download'),
        page.click(`#usage-downloads a[data-format=${format}]`),
      ]);
      assert.match(file.suggestedFilename(), new RegExp(`\\.${format}$`));
      const text = readFileSync((await file.path())!, 'utf8');
      assert.match(text, looks, `${format} download`);
    }
    await browser.screenshot(page, '09-usage');
  });

  test('a failing backend shows in the device log and raises an alarm on the monitor', async () => {
    // A chat server that refuses connections: a port that was free a moment ago.
    const port = await new Promise<number>((resolve) => {
      const server = createServer();
      server.listen(0, '127.0.0.1', () => {
        const { port } = server.address() as AddressInfo;
        server.close(() => resolve(port));
      });
    });
    const added = await apiSend('POST', '/devices', { imei: imei(5), operator: 'acme' });
    assert.equal(added.status, 201);
    const handset = new Handset({
      url: gw.url,
      imei: imei(5),
      secret: added.body.secret,
      transport: 'ws',
      WebSocket,
      client: 'browser-test/1',
    });
    await handset.connect();
    try {
      for (let i = 0; i < 3; i++) {
        await assert.rejects(
          handset.request('im.login', {
            jid: `user${i}@example.test`,
            password: 'not-used-here',
            host: '127.0.0.1',
            port,
          }),
          (err: { code?: string }) => err.code === 'im.unreachable',
        );
      }
    } finally {
      await handset.close();
    }
    await go(`#/devices/${imei(5)}/log`);
    const errors = page.locator('#log-table tr.log-row[data-kind=backend_error]');
    await errors.nth(2).waitFor();
    assert.match(await errors.first().innerText(), /im\.unreachable/);
    await browser.screenshot(page, '09b-device-log-backend-errors');
    await go('#/monitor');
    const alarm = page.locator('#alarm-table tr.alarm-row', { hasText: 'im.unreachable' });
    await alarm.waitFor();
    assert.match(await alarm.innerText(), /backend failing/);
    assert.match(await alarm.innerText(), /active/);
    // The history below the list has the raise (every raise and clear, from the shared history).
    const raised = page.locator('#alarm-history tr.history-row[data-state=raised]', {
      hasText: 'im.unreachable',
    });
    await raised.waitFor();
    assert.match(await raised.innerText(), /backend failing/);
  });

  test('the system monitor lists this node', async () => {
    await go('#/monitor');
    const row = page.locator(`#node-table tr.node-row[data-node="${gw.nodeId}"]`);
    await row.waitFor();
    assert.match(await row.innerText(), /up/);
    await page.locator('#monitor-updated .live-dot').waitFor();
    await browser.screenshot(page, '10-monitor');
  });

  test('the monitor charts the last hour: sessions, events/s, errors; round ticks; fits 420 px', async () => {
    type Sample = { errors: number };
    const errorsOf = (items: Sample[]) => items.reduce((n, x) => n + x.errors, 0);
    // The failing backend above: its errors are in the hour once the interval they fell in is sampled.
    const history = await eventually('three samples, the backend errors above among them', async () => {
      const r = await apiGet('/nodes/history');
      return r.status === 200 && r.body.items.length >= 3 && errorsOf(r.body.items) >= 3 ? r.body : undefined;
    });
    assert.equal(history.intervalMs, 1000);
    await go('#/monitor');
    const sessions = page.locator('#chart-sessions svg polyline.line[data-series=sessions]');
    // Attached, not visible: with no device online the line lies flat on the axis (no height).
    await sessions.waitFor({ state: 'attached' });
    assert.ok(Number(await sessions.getAttribute('data-points')) >= 3);
    await page
      .locator('#chart-events svg polyline.line[data-series="events/s"]')
      .waitFor({ state: 'attached' });
    // The page was open already: it shows those errors once it reads the hour again (every second).
    await eventually('the backend errors among the error bars', async () => {
      const bars = await page
        .locator('#chart-errors svg rect.bar[data-series=errors]')
        .evaluateAll((els) => els.map((e) => Number(e.getAttribute('data-value'))));
      return bars.reduce((a, b) => a + b, 0) >= 3;
    });
    // Every y tick of every chart: a multiple of a step of 1, 2 or 5 × 10^n.
    for (const id of ['chart-sessions', 'chart-events', 'chart-errors']) {
      const ticks = (await page.locator(`#${id} svg text.tick`).allTextContents()).map(Number);
      assert.ok(ticks.length >= 2, `${id} ticks ${ticks}`);
      const step = ticks[1] ?? 0;
      const mantissa = step / 10 ** Math.floor(Math.log10(step));
      assert.ok([1, 2, 5].includes(Number(mantissa.toPrecision(6))), `${id} step ${step}`);
      assert.deepEqual(
        ticks,
        ticks.map((_, i) => Number((i * step).toPrecision(12))),
        `${id} ticks`,
      );
    }
    await browser.screenshot(page, '10b-monitor-hour');

    // A phone-sized window: the charts stack, one a row, none wider than the window.
    await page.setViewportSize({ width: 420, height: 900 });
    try {
      await page.locator('#chart-errors svg').waitFor();
      const boxes = await page
        .locator('#monitor-hour figure.chart-box')
        .evaluateAll((els) => els.map((e) => e.getBoundingClientRect().toJSON()));
      assert.equal(boxes.length, 3);
      // Within the window, and most of its width: the navigation sits above the page, not beside it.
      for (const b of boxes) {
        assert.ok(b.right <= 420 && b.left >= 0 && b.width >= 300, `chart box ${JSON.stringify(b)}`);
      }
      const doc = await page.evaluate(() => ({
        scroll: document.documentElement.scrollWidth,
        client: document.documentElement.clientWidth,
      }));
      assert.ok(doc.scroll <= doc.client, `the page scrolls sideways: ${JSON.stringify(doc)}`);
      assert.ok(
        boxes.every((b, i) => i === 0 || b.top >= (boxes[i - 1]?.bottom ?? 0) - 1),
        'one chart a row',
      );
      const hour = await page
        .locator('#monitor-hour')
        .evaluate((e) => ({ scroll: e.scrollWidth, client: e.clientWidth }));
      assert.ok(hour.scroll <= hour.client, `the charts overflow: ${JSON.stringify(hour)}`);
      await browser.screenshot(page, '10c-monitor-hour-narrow');
    } finally {
      await page.setViewportSize({ width: 1366, height: 768 });
    }
  });

  test('the audit log shows the changes made above, with the record before and after', async () => {
    await go('#/audit');
    await page.locator('#audit-table tr.audit-row').first().waitFor();
    const text = await page.locator('#audit-table').innerText();
    assert.match(text, /device\.create/);
    assert.match(text, new RegExp(deviceImei));
    // The edit of imei(2) above changed its IMSI: both sides are shown.
    await page.fill('input[name=action]', 'device.update');
    const row = page.locator('#audit-table tr.audit-row', { hasText: imei(2) }).first();
    await row.waitFor();
    await page.waitForFunction(() => {
      const rows = Array.from(document.querySelectorAll('#audit-table tr.audit-row'));
      return rows.length > 0 && rows.every((r) => r.textContent?.includes('device.update'));
    });
    for (const d of await row.locator('details').all()) await d.locator('summary').click();
    const [before, after] = await row.locator('pre.json').allInnerTexts();
    assert.ok(before !== undefined && after !== undefined, 'both sides are shown');
    assert.doesNotMatch(before, /001010000000002/, 'before: the IMSI it had');
    assert.match(before, new RegExp(`"imei": "${imei(2)}"`));
    assert.match(after, /"imsi": "001010000000002"/, 'after: the IMSI it got');
    await browser.screenshot(page, '11-audit');
  });

  test('users (admin only): add one with a role, bad input refused inline, reset a password, change a role, remove', async () => {
    await go('#/users');
    await page.locator(`#user-table tr.user-row[data-user="${ADMIN.name}"]`).waitFor();
    assert.equal(
      await page.locator(`#user-table tr[data-user="${ADMIN.name}"] button`, { hasText: 'Remove' }).count(),
      0,
      'an admin cannot remove themselves',
    );
    await page.click('#add-user');
    await page.fill('#user-form input[name=name]', 'desk');
    await page.locator('#user-form select[name=role]').selectOption('operator');
    await page.fill('#user-form input[name=password]', 'short');
    await page.click('#user-form button[type=submit]');
    await page.locator('#hint-password.error').waitFor();
    assert.match(await page.locator('#hint-password').innerText(), /at least 10 characters/);
    await browser.screenshot(page, '12-users-add-refused');
    await page.fill('#user-form input[name=password]', 'desk-password-1');
    await page.click('#user-form button[type=submit]');
    const desk = page.locator('#user-table tr.user-row[data-user=desk]');
    await desk.waitFor();
    assert.match(await desk.innerText(), /operator/);
    const users = (await apiGet('/users')).body.items as Array<{ name: string; role: string }>;
    assert.equal(users.find((u) => u.name === 'desk')?.role, 'operator');

    await desk.locator('button', { hasText: 'Reset password' }).click();
    await page.fill('#password-form input[name=password]', 'desk-password-2');
    await page.click('#password-form button[type=submit]');
    await page.locator('#password-form').waitFor({ state: 'detached' });
    const login = await apiSend('POST', '/auth/login', { name: 'desk', password: 'desk-password-2' }, false);
    assert.equal(login.status, 200, 'the new password works');

    const added = await apiSend('POST', '/users', {
      name: 'leaver',
      role: 'viewer',
      password: 'leaver-password-1',
    });
    assert.equal(added.status, 201);
    await go('#/reference');
    await go('#/users');
    const leaver = page.locator('#user-table tr.user-row[data-user=leaver]');
    assert.equal(
      await page
        .locator(`#user-table tr[data-user="${ADMIN.name}"] button`, { hasText: 'Change role' })
        .count(),
      0,
      'an admin cannot change their own role',
    );
    await leaver.locator('button', { hasText: 'Change role' }).click();
    await page.locator('#role-form select[name=role]').selectOption('operator');
    await page.click('#role-form button[type=submit]');
    await page.locator('#role-form').waitFor({ state: 'detached' });
    await page.locator('#user-table tr.user-row[data-user=leaver] [data-role=operator]').waitFor();
    assert.equal(
      ((await apiGet('/users')).body.items as Array<{ name: string; role: string }>).find(
        (u) => u.name === 'leaver',
      )?.role,
      'operator',
    );
    await leaver.locator('button', { hasText: 'Remove' }).click();
    await leaver.waitFor({ state: 'detached' });
    assert.ok(!(await apiGet('/users')).body.items.some((u: { name: string }) => u.name === 'leaver'));
    await browser.screenshot(page, '13-users');

    // Your own password: the current one is asked for; you stay logged in, the older tokens stop.
    await page
      .locator(`#user-table tr[data-user="${ADMIN.name}"] button`, { hasText: 'Change password' })
      .click();
    await page.fill('#password-form input[name=oldPassword]', 'not-my-password');
    await page.fill('#password-form input[name=password]', 'browser-test-password-2');
    await page.click('#password-form button[type=submit]');
    await page.locator('#hint-oldPassword.error').waitFor();
    await page.fill('#password-form input[name=oldPassword]', ADMIN.password);
    await page.click('#password-form button[type=submit]');
    await page.locator('#password-form').waitFor({ state: 'detached' });
    assert.equal((await apiGet('/auth/me')).status, 401, 'the token from before the change stops working');
    ADMIN.password = 'browser-test-password-2';
    const again = await apiSend('POST', '/auth/login', ADMIN, false);
    assert.equal(again.status, 200, 'the new password works');
    token = again.body.token;
    await go('#/reference');
    await go('#/users');
    await page.locator(`#user-table tr.user-row[data-user="${ADMIN.name}"]`).waitFor();
  });

  test('an operator manages devices but sees no Users page', async () => {
    await logInAs('desk', 'desk-password-2');
    assert.deepEqual(await page.locator('nav.nav a').allInnerTexts(), OPERATOR_NAV);
    await go('#/users');
    await page.waitForURL(/#\/devices$/);
    await page.locator('#add-device').waitFor();
    await browser.screenshot(page, '14-operator-devices');
  });

  test('a viewer sees only the usage report and the system monitor', async () => {
    const res = await apiSend('POST', '/users', {
      name: 'watcher',
      role: 'viewer',
      password: 'viewer-password-1',
    });
    assert.equal(res.status, 201);
    await logInAs('watcher', 'viewer-password-1');
    assert.deepEqual(await page.locator('nav.nav a').allInnerTexts(), ['Usage report', 'System monitor']);
    await go('#/users');
    await page.waitForURL(/#\/usage$/);
    await go('#/devices');
    await page.waitForURL(/#\/usage$/);
    await page.locator('#usage-chart svg').waitFor();
    await browser.screenshot(page, '15-viewer-usage');
    assert.equal(await page.locator('#add-device').count(), 0);

    // Answers like the 401 of the wrong password are logged by Chromium as "Failed to load resource".
    const errors = browser.pageErrors.filter((e) => !/Failed to load resource/.test(e));
    assert.deepEqual(errors, [], 'no script errors on any page');
  });

  test('drain the node from the monitor: it stops', async () => {
    await logInAs(ADMIN.name, ADMIN.password);
    await go('#/monitor');
    const row = page.locator(`#node-table tr.node-row[data-node="${gw.nodeId}"]`);
    await row.locator('button', { hasText: 'Drain' }).waitFor();
    const exited = new Promise<number | null>((resolve) => gw.process.once('exit', (code) => resolve(code)));
    await row.locator('button', { hasText: 'Drain' }).click();
    await page.locator('.toast', { hasText: `Asked ${gw.nodeId} to drain` }).waitFor();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const code = await Promise.race([
      exited,
      new Promise<string>((r) => (timer = setTimeout(() => r('still running'), 30_000))),
    ]);
    clearTimeout(timer);
    assert.equal(code, 0, 'the drained node exits cleanly');
  });
});

/**
 * The admin web UI on a narrow screen (a phone held upright, 400 px wide) in
 * real headless Chromium: on every page the layout stays within the screen
 * (no sideways scrolling of the page; a wide table scrolls inside its panel).
 * Screenshots: test/output/screenshots/narrow-*.png.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Page } from 'playwright-core';
import { imeiWithCheckDigit } from '../../server/store/imei.ts';
import { launchBrowser, type TestBrowser } from '../harness/browser.ts';
import { type Gateway, startGateway } from '../harness/gateway.ts';

const ADMIN = { name: 'root', password: 'narrow-test-password-1' };
const WIDTH = 400;

describe('admin web UI at 400 px wide', () => {
  let gw: Gateway;
  let browser: TestBrowser;
  let page: Page;

  before(async () => {
    gw = await startGateway({ env: { MMGW_ADMIN_NAME: ADMIN.name, MMGW_ADMIN_PASSWORD: ADMIN.password } });
    // A device, so that the device table has a row of its widest content.
    const login = await fetch(`${gw.adminUrl}/api/v1/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(ADMIN),
    });
    const { token } = (await login.json()) as { token: string };
    const call = (path: string, body: unknown) =>
      fetch(`${gw.adminUrl}/api/v1${path}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    assert.equal((await call('/operators', { id: 'demo', name: 'Demo' })).status, 201);
    const imei = imeiWithCheckDigit(`35${String(process.pid % 1e12).padStart(12, '0')}`);
    assert.equal((await call('/devices', { imei, operator: 'demo', imsi: '310150123456789' })).status, 201);
    browser = await launchBrowser({ viewport: { width: WIDTH, height: 800 } });
    page = await browser.newPage();
    page.setDefaultTimeout(30_000);
  });

  after(async () => {
    await browser?.close();
    await gw?.stop();
  });

  /** How far the page reaches past the screen's right edge, and which blocks do. */
  const overflow = () =>
    page.evaluate(() => {
      const doc = document.documentElement;
      const past = Array.from(document.querySelectorAll<HTMLElement>('body *'))
        .filter((e) => {
          // Inside a box that scrolls sideways (a wide table's), reaching past it is the point.
          for (let p = e.parentElement; p; p = p.parentElement)
            if (getComputedStyle(p).overflowX === 'auto' || getComputedStyle(p).overflowX === 'scroll')
              return false;
          return e.getBoundingClientRect().right > doc.clientWidth + 1;
        })
        .slice(0, 5)
        .map((e) => `${e.tagName.toLowerCase()}.${e.className}`);
      return { by: doc.scrollWidth - doc.clientWidth, past };
    });

  test('login and every page of the console fit the width', async () => {
    await page.goto(`${gw.adminUrl}/ui/`);
    await page.locator('input[name=name]').waitFor();
    assert.deepEqual(await overflow(), { by: 0, past: [] }, 'login');
    await page.fill('input[name=name]', ADMIN.name);
    await page.fill('input[name=password]', ADMIN.password);
    await page.click('button[type=submit]');
    await page.locator('nav.nav a').first().waitFor();
    const sections = await page
      .locator('nav.nav a')
      .evaluateAll((as) => as.map((a) => (a as HTMLAnchorElement).getAttribute('href') ?? ''));
    assert.ok(sections.length >= 5, `sections: ${sections.join(' ')}`);
    for (const href of sections) {
      await page.goto(`${gw.adminUrl}/ui/${href}`);
      await page.locator('main h1').first().waitFor();
      // Tables and charts fill in after their fetches.
      await page.waitForLoadState('networkidle');
      await browser.screenshot(page, `narrow-${href.replace(/\W+/g, '') || 'home'}`);
      assert.deepEqual(await overflow(), { by: 0, past: [] }, href);
    }
  });
});

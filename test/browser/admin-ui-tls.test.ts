/**
 * The admin UI over HTTPS in Chromium: a gateway started with --tls-cert and
 * --tls-key (a certificate of a private CA made with openssl), Chromium told
 * to trust that certificate's public key (--ignore-certificate-errors-spki-list,
 * which pins it; no other certificate error is let through), an admin logging
 * in and the device list loading over the same TLS connection. A plain-HTTP
 * URL to the port gets nothing.
 */
import assert from 'node:assert/strict';
import { createHash, createPublicKey } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type { Page } from 'playwright-core';
import { makeTestCa, type TestCa } from '../../testing/index.ts';
import { launchBrowser, type TestBrowser } from '../harness/browser.ts';
import { type Gateway, startGateway } from '../harness/gateway.ts';

const ADMIN = { name: 'root', password: 'browser-tls-password-1' };
const WAIT = { timeout: 30_000 };

/** base64(SHA-256(SubjectPublicKeyInfo)): what Chromium's SPKI list takes. */
function spkiHash(certPem: string): string {
  const der = createPublicKey(certPem).export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(der).digest('base64');
}

describe('admin web UI over HTTPS in Chromium', () => {
  let ca: TestCa;
  let gw: Gateway;
  let browser: TestBrowser;
  let page: Page;

  before(async () => {
    ca = makeTestCa();
    const files = ca.server('gw-admin');
    gw = await startGateway({
      args: ['--tls-cert', files.cert, '--tls-key', files.key],
      env: { MMGW_ADMIN_NAME: ADMIN.name, MMGW_ADMIN_PASSWORD: ADMIN.password },
    });
    browser = await launchBrowser({
      args: [`--ignore-certificate-errors-spki-list=${spkiHash(ca.pem(files.cert))}`],
    });
    page = await browser.newPage();
  });

  after(async () => {
    await browser?.close();
    await gw?.stop();
    ca?.remove();
  });

  test('the UI loads over TLS 1.3 with the gateway certificate, an admin logs in and sees devices', async () => {
    assert.ok(gw.adminUrl.startsWith('https://'));
    const response = await page.goto(`${gw.adminUrl}/ui/`);
    assert.equal(response?.status(), 200);
    const security = await response?.securityDetails();
    assert.equal(security?.protocol, 'TLS 1.3');
    assert.equal(security?.subjectName, 'gw-admin');
    assert.equal(security?.issuer, 'mmgw test CA');
    await page.fill('input[name=name]', ADMIN.name, WAIT);
    await page.fill('input[name=password]', ADMIN.password);
    await page.click('button[type=submit]');
    await page.locator('nav.nav a').first().waitFor(WAIT);
    assert.ok((await page.locator('nav.nav a', { hasText: 'Devices' }).count()) > 0);
    assert.equal(new URL(page.url()).protocol, 'https:');
    assert.deepEqual(
      browser.pageErrors.filter((e) => e.startsWith('pageerror:')),
      [],
    );
  });

  test('the same port over plain HTTP answers nothing a browser shows', async () => {
    const plain = gw.adminUrl.replace(/^https:/, 'http:');
    await assert.rejects(
      page.goto(`${plain}/ui/`),
      /ERR_EMPTY_RESPONSE|ERR_INVALID_HTTP_RESPONSE|ERR_CONNECTION/,
    );
  });
});

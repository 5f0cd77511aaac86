/**
 * The Handset SDK in a real browser (Debian's Chromium) against a real
 * gateway: the SDK bundled for browsers as a handset web app would, its
 * WebSocket carrier with frame compression (pako, SPEC.md §4.4) both ways,
 * pushed events in order, and the long-poll carrier through fetch.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { buildSync } from 'esbuild';
import type { Page } from 'playwright-core';
import { launchBrowser, type TestBrowser } from '../harness/browser.ts';
import { type Gateway, provisionDevice, ROOT, startGateway } from '../harness/gateway.ts';

interface PageResult {
  transport: string;
  compression: string | null;
  echoes: unknown[];
  ticks: number[];
}

/** Runs in the page: connect, 20 echoes, a stream of 50 ticks, close. */
async function inPage(arg: {
  url: string;
  imei: string;
  secret: string;
  transport: 'ws' | 'poll';
}): Promise<PageResult> {
  const { Handset } = (globalThis as any).mmgwSdk;
  const h = new Handset({ url: arg.url, imei: arg.imei, secret: arg.secret, transport: arg.transport });
  const ticks: number[] = [];
  let done: () => void = () => {};
  const allTicks = new Promise<void>((resolve) => {
    done = resolve;
  });
  h.on('event', (e: { name: string; body: { n: number } }) => {
    if (e.name !== 'sys.tick') return;
    ticks.push(e.body.n);
    if (ticks.length === 50) done();
  });
  const welcome = await h.connect();
  const echoes: unknown[] = [];
  for (let i = 0; i < 20; i++) {
    echoes.push(
      await h.request('sys.echo', { text: `hello ${i} from the browser`, n: [i, i * 2], ok: true }),
    );
  }
  await h.request('sys.stream', { count: 50, from: 1 });
  await allTicks;
  const transport = h.transport;
  await h.close();
  return { transport, compression: welcome.compression ?? null, echoes, ticks };
}

describe('the Handset SDK in Chromium', () => {
  let gw: Gateway;
  let browser: TestBrowser;
  let page: Page;
  let bundle: string;

  before(async () => {
    gw = await startGateway();
    browser = await launchBrowser();
    page = await browser.newPage();
    // An http origin (the admin port) for the page; the SDK talks to the device port.
    await page.goto(`${gw.adminUrl}/healthz`);
    bundle = buildSync({
      entryPoints: [`${ROOT}/device-protocol/handset.ts`],
      bundle: true,
      format: 'iife',
      globalName: 'mmgwSdk',
      platform: 'browser',
      target: 'es2022',
      write: false,
    }).outputFiles[0]!.text;
    await page.addScriptTag({ content: bundle });
    // inPage goes to the page as source text; tsx compiled it with esbuild's keepNames, whose
    // __name helper exists only in this process.
    await page.addScriptTag({ content: 'var __name = (f) => f;' });
  });

  after(async () => {
    await browser?.close();
    await gw?.stop();
  });

  test('the browser bundle holds no Node built-in', () => {
    assert.doesNotMatch(bundle, /require\(["']node:/);
    assert.doesNotMatch(bundle, /from ["']node:/);
  });

  for (const transport of ['ws', 'poll'] as const) {
    test(`${transport}: requests answered, events pushed in order${transport === 'ws' ? ', frames compressed' : ''}`, async () => {
      const device = await provisionDevice(gw.dataDir);
      const url = transport === 'ws' ? gw.url : gw.url.replace(/^ws:/, 'http:');
      const r = await page.evaluate(inPage, { url, imei: device.imei, secret: device.secret, transport });
      assert.equal(r.transport, transport);
      assert.equal(r.compression, transport === 'ws' ? 'deflate' : null);
      assert.deepEqual(
        r.echoes,
        Array.from({ length: 20 }, (_, i) => ({
          text: `hello ${i} from the browser`,
          n: [i, i * 2],
          ok: true,
        })),
      );
      assert.deepEqual(
        r.ticks,
        Array.from({ length: 50 }, (_, i) => i + 1),
      );
      // Uncaught errors in the page; resource statuses are not errors here (the favicon's 404, the
      // 410 that answers the held GET after the SDK logged out).
      assert.deepEqual(
        browser.pageErrors.filter((e) => e.startsWith('pageerror:')),
        [],
      );
    });
  }
});

/**
 * Test harness: Debian's Chromium, headless, driven by playwright-core.
 *
 *   const browser = await launchBrowser();
 *   t.after(() => browser.close());
 *   const page = await browser.newPage();
 *   await page.goto(gw.adminUrl + '/ui/');
 *   await browser.screenshot(page, 'login');   // test/output/screenshots/login.png
 *
 * We use the distribution's Chromium rather than a downloaded Playwright build:
 * CI installs it with the other peers (scripts/install-peers.sh), and so does
 * launchBrowser() when it is missing (apt, where root or sudo allows); no
 * browser build is downloaded by Playwright. Every launch gets a fresh user
 * data directory so no cookie, cache or storage leaks between runs; it is
 * removed on close().
 * Every browser launched here is also closed when the test process exits.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { ROOT } from './gateway.ts';

export const CHROMIUM_PATH = process.env.MMGW_CHROMIUM ?? '/usr/bin/chromium';
export const SCREENSHOT_DIR = join(ROOT, 'test', 'output', 'screenshots');

/** Flags that keep Chromium from reaching the network on its own (updates, sync, field trials). */
const CHROMIUM_ARGS = [
  '--headless=new',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export interface TestBrowser {
  context: BrowserContext;
  newPage(): Promise<Page>;
  /** Saves a full-page PNG as test/output/screenshots/<name>.png and returns its path. */
  screenshot(page: Page, name: string): Promise<string>;
  /** Messages the pages logged at error level and uncaught page errors (for assertions and failure output). */
  pageErrors: string[];
  /** Closes the browser and removes its profile. Idempotent. */
  close(): Promise<void>;
}

const profiles = new Set<string>();
let exitHookInstalled = false;

export interface LaunchOptions {
  /** Viewport; default a laptop screen, 1366×768. */
  viewport?: { width: number; height: number };
  /** More Chromium flags (e.g. --ignore-certificate-errors-spki-list=… to trust a test certificate). */
  args?: string[];
}

/**
 * Debian's chromium is missing: install it (with the other peers) once, as
 * CI does. Needs root or sudo without a password; stdin is closed so a sudo
 * that wants one fails at once instead of waiting.
 */
function installChromium(): void {
  const script = join(ROOT, 'scripts', 'install-peers.sh');
  const r = spawnSync('bash', [script], { stdio: ['ignore', 'inherit', 'inherit'], timeout: 600_000 });
  if (r.status !== 0)
    process.stderr.write(`${script} failed (exit ${r.status}); Chromium is still missing\n`);
}

export async function launchBrowser(options: LaunchOptions = {}): Promise<TestBrowser> {
  if (!existsSync(CHROMIUM_PATH) && process.env.MMGW_CHROMIUM === undefined) installChromium();
  if (!existsSync(CHROMIUM_PATH)) {
    throw new Error(
      `no Chromium at ${CHROMIUM_PATH}: the browser tests need Debian's chromium package; ` +
        'install it with scripts/install-peers.sh (or set MMGW_CHROMIUM to another Chromium binary)',
    );
  }
  const userDataDir = mkdtempSync(join(tmpdir(), 'mmgw-chromium-'));
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM_PATH,
      args: [...CHROMIUM_ARGS, ...(options.args ?? [])],
      // Playwright adds its own --headless; ours (--headless=new) is in args.
      headless: true,
      viewport: options.viewport ?? { width: 1366, height: 768 },
      timeout: 60_000,
    });
  } catch (err) {
    rmSync(userDataDir, { recursive: true, force: true });
    throw err;
  }
  const pageErrors: string[] = [];
  const watch = (page: Page) => {
    page.on('pageerror', (err) => pageErrors.push(`pageerror: ${err.message}`));
    page.on('console', (msg) => {
      if (msg.type() === 'error') pageErrors.push(`console: ${msg.text()}`);
    });
  };
  context.pages().forEach(watch);
  context.on('page', watch);

  let closing: Promise<void> | undefined;
  const browser: TestBrowser = {
    context,
    pageErrors,
    async newPage() {
      // A persistent context opens with one blank page: use it first.
      const blank = context.pages().find((p) => p.url() === 'about:blank');
      return blank ?? context.newPage();
    },
    async screenshot(page, name) {
      mkdirSync(SCREENSHOT_DIR, { recursive: true });
      const path = join(SCREENSHOT_DIR, `${name}.png`);
      await page.screenshot({ path, fullPage: true });
      return path;
    },
    close() {
      closing ??= (async () => {
        try {
          await context.close();
        } finally {
          rmSync(userDataDir, { recursive: true, force: true });
          profiles.delete(userDataDir);
        }
      })();
      return closing;
    },
  };
  profiles.add(userDataDir);
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    // Playwright kills its browsers when this process exits; 'exit' handlers are synchronous,
    // so only the profile directories are removed here.
    process.on('exit', () => {
      for (const dir of profiles) rmSync(dir, { recursive: true, force: true });
    });
  }
  return browser;
}

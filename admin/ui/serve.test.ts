import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import { createUiHandler, UI_CSP } from './serve.ts';

describe('admin UI static files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mmgw-ui-'));
  const dist = join(dir, 'dist');
  let server: Server;
  let base: string;

  before(async () => {
    // dist is missing: the handler builds the UI first (what a start without `npm run build:ui` does).
    const handler = await createUiHandler({ logger: pino({ level: 'silent' }), distDir: dist });
    server = createServer(async (req, res) => {
      const url = new URL(req.url ?? '/', 'http://x.invalid');
      if (!(await handler(req, res, url))) {
        res.writeHead(404);
        res.end('nobody');
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async () => {
    await new Promise<void>((resolve) => server?.close(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
  });

  test('builds into dist when it is missing', () => {
    for (const name of ['index.html', 'app.js', 'app.css', 'favicon.svg']) {
      assert.ok(existsSync(join(dist, name)), `${name} built`);
    }
    assert.doesNotMatch(readFileSync(join(dist, 'index.html'), 'utf8'), /https?:\/\//);
  });

  test('/ and /ui redirect to /ui/, which is the app with a same-origin policy', async () => {
    for (const path of ['/', '/ui']) {
      const res = await fetch(base + path, { redirect: 'manual' });
      assert.equal(res.status, 302);
      assert.equal(res.headers.get('location'), '/ui/');
    }
    const res = await fetch(`${base}/ui/`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/html/);
    assert.equal(res.headers.get('content-security-policy'), UI_CSP);
    assert.match(await res.text(), /<script type="module" src="app.js">/);
  });

  test('assets carry their content type; HEAD has no body', async () => {
    const js = await fetch(`${base}/ui/app.js`);
    assert.match(js.headers.get('content-type') ?? '', /^text\/javascript/);
    assert.ok((await js.text()).length > 1000);
    const css = await fetch(`${base}/ui/app.css`, { method: 'HEAD' });
    assert.equal(css.status, 200);
    assert.match(css.headers.get('content-type') ?? '', /^text\/css/);
    assert.equal(await css.text(), '');
  });

  test('passes on what is not its own: the API, unknown files, other methods, paths out of dist', async () => {
    for (const path of ['/api/v1/nodes', '/healthz', '/ui/nope.js', '/ui/..%2Fbuild.ts', '/ui/../serve.ts']) {
      const res = await fetch(base + path);
      assert.equal(res.status, 404, path);
      assert.equal(await res.text(), 'nobody', path);
    }
    const post = await fetch(`${base}/ui/`, { method: 'POST' });
    assert.equal(post.status, 404);
  });
});

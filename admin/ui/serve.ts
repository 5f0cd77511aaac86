/**
 * Serves the built admin web UI on the ops/admin endpoint:
 *
 *   GET /          → 302 /ui/
 *   GET /ui/       → index.html (the app routes with #/…, so one page is enough)
 *   GET /ui/<file> → a built asset
 *
 *   ops.use(await createUiHandler({ logger }));
 *
 * When admin/ui/dist is missing (an install that skipped the `prepare` script)
 * or older than its sources, the UI is built on start; when dist cannot be written (a read-only
 * install, e.g. a container running as an unprivileged user), it is built in
 * memory instead. Every answer carries a Content-Security-Policy that allows
 * only this origin: the UI never loads anything from the internet.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { OpsHandler } from '../../server/index.ts';
import { BUILD_INFO, buildUi, isBuildFresh, UI_DIST, type UiFiles } from './build.ts';

const CONTENT_TYPES: Record<string, string> = {
  html: 'text/html; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
  svg: 'image/svg+xml',
  png: 'image/png',
};

export const UI_CSP =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; " +
  "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

export interface UiHandlerOptions {
  logger: Logger;
  /** Where the built files are; default admin/ui/dist. */
  distDir?: string;
}

function readDist(dir: string): UiFiles | undefined {
  if (!existsSync(join(dir, 'index.html'))) return undefined;
  const files: UiFiles = new Map();
  for (const name of readdirSync(dir))
    if (name !== BUILD_INFO) files.set(name, readFileSync(join(dir, name)));
  return files;
}

/** Loads (or builds) the UI files once and returns the handler that serves them. */
export async function createUiHandler(options: UiHandlerOptions): Promise<OpsHandler> {
  const logger = options.logger;
  const distDir = options.distDir ?? UI_DIST;
  // A build older than its sources (the UI was edited since) is rebuilt too.
  let files = isBuildFresh(distDir) ? readDist(distDir) : undefined;
  if (!files) {
    logger.info({ dir: distDir }, 'admin UI not built yet (or older than its sources): building it now');
    try {
      files = await buildUi({ outDir: distDir });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EACCES' && code !== 'EROFS' && code !== 'EPERM') throw err;
      logger.warn({ dir: distDir, code }, 'cannot write the admin UI build; serving it from memory');
      files = await buildUi({ outDir: false });
    }
  }
  return uiHandler(files);
}

/** The handler over a set of files already in memory. */
export function uiHandler(files: UiFiles): OpsHandler {
  return (req: IncomingMessage, res: ServerResponse, url: URL) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return false;
    const path = url.pathname;
    if (path === '/' || path === '/ui') {
      res.writeHead(302, { location: '/ui/' });
      res.end();
      return true;
    }
    if (!path.startsWith('/ui/')) return false;
    const rest = path.slice('/ui/'.length);
    // Only plain file names: no directories, so no way out of the build.
    const name = rest === '' || !rest.includes('.') ? 'index.html' : rest;
    const body = /^[\w.-]+$/.test(name) ? files.get(name) : undefined;
    if (!body) return false;
    const ext = name.slice(name.lastIndexOf('.') + 1);
    res.writeHead(200, {
      'content-type': CONTENT_TYPES[ext] ?? 'application/octet-stream',
      'content-length': body.byteLength,
      // index.html is tiny and names the assets: always revalidate so a new release shows at once.
      'cache-control': 'no-cache',
      'content-security-policy': UI_CSP,
      'x-content-type-options': 'nosniff',
      'referrer-policy': 'no-referrer',
      'x-frame-options': 'DENY',
    });
    res.end(req.method === 'HEAD' ? undefined : body);
    return true;
  };
}

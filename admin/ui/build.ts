/**
 * Builds the admin web UI into static files: index.html, app.js (one esbuild
 * bundle of src/main.ts), app.css. Nothing in the output refers to another
 * origin, so a gateway with no internet access serves a complete UI.
 *
 *   npm run build:ui                     # writes admin/ui/dist
 *   const files = await buildUi({ write: false });   // in memory (read-only installs)
 *
 * Runs from `npm ci` (the `prepare` script) and, when dist is missing, from
 * the admin role on its first start (serve.ts).
 */
import { mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

// The UI's sources and its build stay in admin/ui even when this module runs from
// the server's build (dist/admin/ui/build.js): the UI is bundled from the sources.
export const UI_DIR = fileURLToPath(
  new URL(import.meta.url.endsWith('.js') ? '../../../admin/ui/' : '.', import.meta.url),
);
export const UI_DIST = join(UI_DIR, 'dist');
/** Written beside the assets, never served: what the build was made from (to spot a stale build). */
export const BUILD_INFO = 'build.json';
const STATIC_SOURCES = ['index.html', 'app.css', 'favicon.svg'];

/** File name → contents. */
export type UiFiles = Map<string, Uint8Array>;

export interface BuildUiOptions {
  /** Write into this directory (default admin/ui/dist); false keeps the files in memory only. */
  outDir?: string | false;
  /** Minify app.js (default true). */
  minify?: boolean;
}

export async function buildUi(options: BuildUiOptions = {}): Promise<UiFiles> {
  // Imported here so that serving an already built UI never loads esbuild.
  const esbuild = await import('esbuild');
  const result = await esbuild.build({
    entryPoints: [join(UI_DIR, 'src', 'main.ts')],
    bundle: true,
    format: 'esm',
    target: ['es2022', 'chrome110', 'firefox110', 'safari16'],
    platform: 'browser',
    minify: options.minify ?? true,
    sourcemap: false,
    write: false,
    outfile: 'app.js',
    logLevel: 'silent',
    legalComments: 'none',
    metafile: true,
    absWorkingDir: UI_DIR,
  });
  const files: UiFiles = new Map();
  for (const out of result.outputFiles) files.set(out.path.split('/').pop() ?? 'app.js', out.contents);
  for (const name of STATIC_SOURCES) files.set(name, readFileSync(join(UI_DIR, 'src', name)));
  // Relative to admin/ui, so that a tree moved elsewhere still knows its build is fresh.
  const inputs = [
    ...Object.keys(result.metafile.inputs),
    ...STATIC_SOURCES.map((name) => `src/${name}`),
    'build.ts',
  ];

  const outDir = options.outDir ?? UI_DIST;
  if (outDir !== false) {
    // Build beside and rename, so a server reading dist never sees half of a build.
    const tmp = `${outDir}.tmp-${process.pid}`;
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp, { recursive: true });
    for (const [name, data] of files) writeFileSync(join(tmp, name), data);
    writeFileSync(join(tmp, BUILD_INFO), JSON.stringify({ inputs }, null, 1));
    rmSync(outDir, { recursive: true, force: true });
    try {
      renameSync(tmp, outDir);
    } catch (err) {
      // Another process (a second gateway starting at the same moment) put its build there first: same sources, keep it.
      rmSync(tmp, { recursive: true, force: true });
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err;
    }
  }
  return files;
}

/**
 * True when a build in `dir` exists and none of the files it was made from
 * changed since (a working tree where someone edited the UI after building).
 */
export function isBuildFresh(dir: string = UI_DIST): boolean {
  try {
    const builtAt = statSync(join(dir, 'index.html')).mtimeMs;
    const { inputs } = JSON.parse(readFileSync(join(dir, BUILD_INFO), 'utf8')) as { inputs: string[] };
    return inputs.every((p) => {
      try {
        return statSync(resolve(UI_DIR, p)).mtimeMs <= builtAt;
      } catch {
        return false;
      }
    });
  } catch {
    return false;
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const started = Date.now();
  buildUi().then(
    (files) => {
      const bytes = [...files.values()].reduce((n, f) => n + f.byteLength, 0);
      console.log(
        `admin UI built: ${files.size} files, ${bytes} bytes in ${UI_DIST} (${Date.now() - started} ms)`,
      );
    },
    (err) => {
      console.error(`admin UI build failed: ${err instanceof Error ? err.message : err}`);
      process.exit(1);
    },
  );
}

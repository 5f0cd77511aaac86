/**
 * `npm run build` (also the `prepare` script, so `npm ci` runs it): compiles
 * the product into dist/ and builds the admin web UI into admin/ui/dist.
 *
 *   dist/<folder>/<file>.js   one ES module per source file of server/,
 *                             device-protocol/, transcoder/ and admin/ (tests
 *                             and the browser sources of the UI left out), the
 *                             same tree as the sources so that paths relative
 *                             to a module (import.meta.url) still hold
 *   dist/…/*.js.map           source maps to the .ts files (used with
 *                             `node --enable-source-maps`)
 *   dist/device-protocol/*.d.ts  declarations of the SDK (package export "./sdk")
 *   dist/build.json           when and from what the build was made (test/harness
 *                             uses it to spot a build older than its sources)
 *
 * Why esbuild per file rather than `tsc` emit: it takes well under a second
 * (tsc over the project takes about a minute here), so `node test/run.js`
 * rebuilds before every run and the gateways the tests start always run the
 * current sources; and it compiles each file the way tsx did, so the built
 * code behaves as the sources did under tsx (isolatedModules in tsconfig
 * keeps every file compilable alone). Not one bundle: a bundle would move
 * modules away from the files they read beside them, and a process loads
 * only the modules it imports (an edge worker leaves the admin and transport
 * code on disk). tsc still writes the SDK's declarations (esbuild writes
 * none) and type-checks everything in `npm test`.
 *
 *   node --import tsx scripts/build.ts [--no-types] [--no-ui]
 *     --no-types  skip the declarations (test/run.js: tests need no .d.ts)
 *     --no-ui     skip the admin UI
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const DIST = join(ROOT, 'dist');
/** Folders compiled into dist/ (bin/mmgw.js and scripts/ are not). */
export const PRODUCT_FOLDERS = ['server', 'device-protocol', 'transcoder', 'admin'];
/** Files besides .ts that the product reads at run time, relative to its module (copied as they are). */
const ASSETS = ['server/edge/reuseport/mmgw-reuseport.c'];
export const BUILD_INFO = 'build.json';

/** Paths, relative to the root, under a product folder that are not product code. */
function excluded(path: string): boolean {
  return (
    path.endsWith('.test.ts') ||
    // Browser code, bundled into admin/ui/dist by the UI build.
    path.startsWith('admin/ui/src/') ||
    path.startsWith('admin/ui/dist')
  );
}

/** Every .ts file of the product, relative to the root. */
export function productSources(): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(join(ROOT, dir))) {
      const path = `${dir}/${name}`;
      if (statSync(join(ROOT, path)).isDirectory()) walk(path);
      else if (name.endsWith('.ts') && !name.endsWith('.d.ts') && !excluded(path)) out.push(path);
    }
  };
  for (const folder of PRODUCT_FOLDERS) walk(folder);
  return out.sort();
}

/**
 * esbuild has no "rewrite extensions" option when it does not bundle, so it
 * bundles with every import external: each entry point is then compiled
 * alone, and this plugin turns `./x.ts` into `./x.js` on the way.
 */
const perFile: esbuild.Plugin = {
  name: 'per-file',
  setup(build) {
    build.onResolve({ filter: /.*/ }, (args) => {
      if (args.kind === 'entry-point') return undefined;
      if (args.path.startsWith('.')) return { path: args.path.replace(/\.ts$/, '.js'), external: true };
      return { path: args.path, external: true };
    });
  },
};

export async function buildJs(): Promise<number> {
  const sources = productSources();
  const tmp = `${DIST}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  await esbuild.build({
    entryPoints: sources.map((s) => join(ROOT, s)),
    outbase: ROOT,
    outdir: tmp,
    bundle: true,
    plugins: [perFile],
    platform: 'node',
    format: 'esm',
    // What tsx did at run time: same target, names kept (error classes and logs read .name).
    target: 'node20',
    keepNames: true,
    sourcemap: 'linked',
    sourcesContent: false,
    logLevel: 'warning',
  });
  for (const asset of ASSETS) {
    mkdirSync(dirname(join(tmp, asset)), { recursive: true });
    copyFileSync(join(ROOT, asset), join(tmp, asset));
  }
  writeFileSync(
    join(tmp, BUILD_INFO),
    JSON.stringify({ builtAt: new Date().toISOString(), sources: sources.length }, null, 1),
  );
  // Replace dist/ as a whole: no module of an older build stays behind.
  rmSync(DIST, { recursive: true, force: true });
  renameSync(tmp, DIST);
  return sources.length;
}

/** The SDK's declarations (device-protocol/index.ts and what it reaches), from tsconfig.sdk.json. */
export function buildTypes(): void {
  const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  execFileSync(process.execPath, [tsc, '-p', join(ROOT, 'tsconfig.sdk.json')], { stdio: 'inherit' });
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const started = Date.now();
  const n = await buildJs();
  let line = `dist/: ${n} modules`;
  if (!process.argv.includes('--no-types')) {
    buildTypes();
    line += ' + SDK declarations';
  }
  if (!process.argv.includes('--no-ui')) {
    const { buildUi, isBuildFresh } = await import('../admin/ui/build.ts');
    if (isBuildFresh()) line += '; admin UI up to date';
    else line += `; admin UI: ${(await buildUi()).size} files`;
  }
  console.log(`${line} (${Date.now() - started} ms, ${relative(process.cwd(), DIST) || '.'})`);
}

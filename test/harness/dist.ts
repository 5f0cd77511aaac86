/**
 * The gateways the tests start run `mmgw`, that is the build in dist/: this
 * makes sure it is the build of the sources as they are now. test/run.js
 * builds before it runs tests under test/; a test file started on its own
 * (`node --import tsx --test test/integration/x.test.ts`) after an edit gets
 * its build here, once per test process.
 */
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { BUILD_INFO, buildJs, DIST, productSources, ROOT } from '../../scripts/build.ts';

let ensured: Promise<void> | undefined;

/** The path of the first product source newer than the build, or undefined when the build is current. */
export function staleSource(): string | undefined {
  let builtAt: number;
  try {
    JSON.parse(readFileSync(join(DIST, BUILD_INFO), 'utf8'));
    builtAt = statSync(join(DIST, BUILD_INFO)).mtimeMs;
  } catch {
    return 'dist/ (missing)';
  }
  return productSources().find((s) => statSync(join(ROOT, s)).mtimeMs > builtAt);
}

export function ensureBuilt(): Promise<void> {
  ensured ??= (async () => {
    const stale = staleSource();
    if (stale === undefined) return;
    process.stderr.write(`# dist/ is older than ${stale}: building it\n`);
    await buildJs();
  })();
  return ensured;
}

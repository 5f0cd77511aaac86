// Test support lives in testing/ and test/; the product never imports it (the
// build in dist/ leaves both out, so such an import would fail only at run time).
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { PRODUCT_FOLDERS, ROOT } from '../../scripts/build.ts';

/** Every .ts of the product folders but their tests (the browser sources of the admin UI included). */
function productFiles(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(join(ROOT, dir))) {
    const path = `${dir}/${name}`;
    if (name === 'dist' || name === 'node_modules') continue;
    if (statSync(join(ROOT, path)).isDirectory()) productFiles(path, out);
    else if (name.endsWith('.ts') && !name.endsWith('.test.ts')) out.push(path);
  }
  return out;
}

const SPECIFIER = /(?:from\s+|import\s*\(\s*|import\s+)'([^']+)'/g;

test('no product source imports testing/ or test/', () => {
  const files = PRODUCT_FOLDERS.flatMap((f) => productFiles(f));
  assert.ok(files.length > 100, `${files.length} product files`);
  const offenders: string[] = [];
  for (const file of files) {
    for (const [, spec] of readFileSync(join(ROOT, file), 'utf8').matchAll(SPECIFIER)) {
      if (!spec?.startsWith('.')) continue;
      const target = resolve(ROOT, file, '..', spec).slice(ROOT.length);
      if (/^\/?(testing|test)\//.test(target)) offenders.push(`${file} imports ${spec}`);
    }
  }
  assert.deepEqual(offenders, []);
});

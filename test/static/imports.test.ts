// What the product imports: never test support, and across its top-level
// folders only through their index.ts (the rule is in import-rule.ts).
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { test } from 'node:test';
import { PRODUCT_FOLDERS, ROOT } from '../../scripts/build.ts';
import { type ImportException, importRuleViolations, importsOf, sourceFiles } from './import-rule.ts';

/** Every .ts of the product folders but their tests (the browser sources of the admin UI included). */
const productFiles = () =>
  PRODUCT_FOLDERS.flatMap((f) => sourceFiles(ROOT, f)).filter((f) => f.endsWith('.ts'));

/** The imports the rule lets through in this tree, each with why (docs/architecture.md, "Layout"). */
const EXCEPTIONS: ImportException[] = [
  {
    from: 'admin/ui/src/',
    why:
      'browser code, bundled alone by admin/ui/build.ts: it takes the node-free server modules it shares ' +
      '(imei.ts, device-csv.ts, records/types.ts) as they are, since server/index.ts reaches node: modules and lmdb',
  },
  { from: 'scripts/build.ts', to: 'admin/ui/build.ts', why: 'the build runs the admin UI build' },
];

// Test support lives in testing/ and test/; the product never imports it (the
// build in dist/ leaves both out, so such an import would fail only at run time).
test('no product source imports testing/ or test/', () => {
  const files = productFiles();
  assert.ok(files.length > 100, `${files.length} product files`);
  const offenders: string[] = [];
  for (const file of files) {
    for (const { specifier } of importsOf(readFileSync(join(ROOT, file), 'utf8'))) {
      if (!specifier.startsWith('.')) continue;
      const target = resolve(ROOT, file, '..', specifier).slice(ROOT.length);
      if (/^\/?(testing|test)\//.test(target)) offenders.push(`${file} imports ${specifier}`);
    }
  }
  assert.deepEqual(offenders, []);
});

test('product folders and entry points import another top-level folder only through its index.ts', () => {
  const files = [...productFiles(), ...sourceFiles(ROOT, 'scripts'), ...sourceFiles(ROOT, 'bin')];
  assert.deepEqual(
    importRuleViolations({
      root: ROOT,
      folders: PRODUCT_FOLDERS,
      files,
      publicModules: ['device-protocol'],
      exceptions: EXCEPTIONS,
    }),
    [],
  );
});

test('the SDK imports nothing outside device-protocol/', () => {
  const offenders = sourceFiles(ROOT, 'device-protocol').flatMap((file) =>
    importsOf(readFileSync(join(ROOT, file), 'utf8'))
      .filter(({ specifier }) => specifier.startsWith('.'))
      .filter(
        ({ specifier }) =>
          !resolve(ROOT, dirname(file), specifier).startsWith(join(ROOT, 'device-protocol/')),
      )
      .map(({ specifier }) => `${file} imports ${specifier}`),
  );
  assert.deepEqual(offenders, []);
});

test('the import rule catches each way of reaching into another folder, and lets the allowed ones through', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mmgw-import-rule-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const files: Record<string, string> = {
    'lib/index.ts': "export { inner } from './inner.ts';\n",
    'lib/inner.ts': 'export const inner = 1;\n',
    'lib/hidden.ts': 'export const hidden = 1;\n',
    'lib/role.ts': 'export const role = 1;\n',
    'sdk/index.ts': "export * from './errors.ts';\n",
    'sdk/errors.ts': 'export class E {}\n',
    'sdk/bytes.ts': 'export const b = 1;\n',
    'app/ok.ts': [
      "import { inner } from '../lib/index.ts';",
      "import { E } from '../sdk/errors.ts';",
      "import { local } from './local.ts';",
      "const role = await import('../lib/role.ts');",
      'export { inner, E, local, role };',
      '',
    ].join('\n'),
    'app/local.ts': 'export const local = 1;\n',
    'app/bad.ts': [
      "import { inner } from '../lib/inner.ts';",
      "import type { hidden } from '../lib/hidden.ts';",
      "export { role } from '../lib/role.ts';",
      "const later = await import('../lib/hidden.ts');",
      "import { b } from '../sdk/bytes.ts';",
      '',
    ].join('\n'),
    'app/excused.ts': "import { hidden } from '../lib/hidden.ts';\n",
    'tools/run.ts': "import { hidden } from '../lib/hidden.ts';\n",
  };
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(join(dir, dirname(path)), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
  const violations = importRuleViolations({
    root: dir,
    folders: ['lib', 'sdk', 'app'],
    files: Object.keys(files),
    publicModules: ['sdk'],
    exceptions: [{ from: 'app/excused.ts', to: 'lib/hidden.ts', why: 'fixture' }],
  });
  assert.deepEqual(violations.sort(), [
    'app/bad.ts imports ../lib/hidden.ts',
    'app/bad.ts imports ../lib/hidden.ts',
    'app/bad.ts imports ../lib/inner.ts',
    'app/bad.ts imports ../lib/role.ts',
    'app/bad.ts imports ../sdk/bytes.ts',
    'tools/run.ts imports ../lib/hidden.ts',
  ]);
});

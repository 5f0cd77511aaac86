/**
 * Each top-level folder's index.ts, built, loads on its own in a fresh
 * process (no cycle between the indexes leaves a binding uninitialised), and
 * loads no role: ESM evaluates every module an index re-exports, so a role
 * that crept into an index would be paid for by every process importing it.
 * The modules a process loads are listed by a module hook in that process.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { DIST, PRODUCT_FOLDERS } from '../../scripts/build.ts';
import { ensureBuilt } from '../harness/dist.ts';

/** Modules of the build (relative to dist/) and packages that loading `dist/<folder>/index.js` evaluates. */
function loadedBy(folder: string, dir: string): string[] {
  const log = join(dir, `${folder}.log`);
  writeFileSync(log, '');
  const hooks = join(dir, 'hooks.mjs');
  writeFileSync(
    hooks,
    `import { appendFileSync } from 'node:fs';
export async function load(url, context, next) {
  appendFileSync(${JSON.stringify(log)}, url + '\\n');
  return next(url, context);
}
`,
  );
  const register = join(dir, 'register.mjs');
  writeFileSync(
    register,
    `import { register } from 'node:module';\nregister(${JSON.stringify(pathToFileURL(hooks).href)});\n`,
  );
  const index = pathToFileURL(join(DIST, folder, 'index.js')).href;
  const code = `await import(${JSON.stringify(index)})`;
  execFileSync(
    process.execPath,
    ['--import', pathToFileURL(register).href, '--input-type=module', '-e', code],
    {
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  const distUrl = `${pathToFileURL(DIST).href}/`;
  return [
    ...new Set(
      readFileSync(log, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((url) => {
          if (url.startsWith(distUrl)) return url.slice(distUrl.length);
          const pkg = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
          return pkg ? `package ${pkg[1]}` : url;
        }),
    ),
  ];
}

/** What no process should load only because it imported an index: the roles and what they run on. */
const ROLE_CODE = [
  /^server\/edge\//,
  /^server\/transport\/(?!credentials\.js$)/,
  /^server\/supervision\//,
  /^server\/cli\//,
  /^(server|admin|transcoder)\/role\.js$/,
  /^package (@trufflesuite\/uws-js-unofficial|imapflow|nodemailer|@xmpp\/client|ws)$/,
];

test('every top-level index.ts loads alone, and none loads a role', async (t) => {
  await ensureBuilt();
  const dir = mkdtempSync(join(tmpdir(), 'mmgw-index-load-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  for (const folder of PRODUCT_FOLDERS) {
    const loaded = loadedBy(folder, dir);
    assert.ok(loaded.includes(`${folder}/index.js`), `${folder}: ${loaded.join(', ')}`);
    assert.deepEqual(
      loaded.filter((m) => ROLE_CODE.some((r) => r.test(m))),
      [],
      `${folder}/index.ts loads role code`,
    );
    if (folder === 'device-protocol')
      assert.deepEqual(
        loaded.filter((m) => !m.startsWith('device-protocol/')),
        ['package pako'],
        'the SDK loads only itself and pako',
      );
    if (folder === 'server')
      assert.deepEqual(
        loaded.filter((m) => m.startsWith('transcoder/') || m.startsWith('admin/') || m === 'package sharp'),
        [],
        'server/index.ts loads neither the transcoder nor the admin',
      );
  }
});

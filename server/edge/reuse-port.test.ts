import assert from 'node:assert/strict';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { GatewayError } from '../../device-protocol/errors.ts';
import { buildReusePortPreload, privateCacheDir } from './reuse-port.ts';

function scratch(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'mmgw-reuseport-test-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const isConfigInvalid = (err: unknown) => err instanceof GatewayError && err.code === 'config.invalid';

test('the preload library is built into a 0700 directory of this user and reused from there', async (t) => {
  const cacheDir = join(scratch(t), 'cache');
  const lib = await buildReusePortPreload({ cacheDir });
  assert.ok(lib.startsWith(cacheDir));
  assert.equal(statSync(cacheDir).mode & 0o777, 0o700);
  assert.equal(await buildReusePortPreload({ cacheDir }), lib);
});

test('a cache directory others can write is refused before anything is loaded from it', (t) => {
  const dir = join(scratch(t), 'shared');
  mkdirSync(dir);
  chmodSync(dir, 0o777);
  assert.throws(() => privateCacheDir(dir), isConfigInvalid);
});

test('a library under the expected name that another user planted is never preloaded', async (t) => {
  if (process.getuid?.() !== 0) return t.skip('needs root to create a file of another user');
  const cacheDir = join(scratch(t), 'cache');
  const lib = await buildReusePortPreload({ cacheDir });
  rmSync(lib);
  writeFileSync(lib, 'not a library');
  chownSync(lib, 65534, 65534);
  await assert.rejects(buildReusePortPreload({ cacheDir }), isConfigInvalid);
  chownSync(lib, 0, 0);
  chmodSync(lib, 0o666);
  await assert.rejects(buildReusePortPreload({ cacheDir }), isConfigInvalid);
});

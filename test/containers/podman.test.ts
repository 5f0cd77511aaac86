// The files test/containers/podman.ts hashes to name the image are the build
// context .dockerignore lets through: the sources the Dockerfile copies, and
// none of node_modules/, data/, dist/, keys or tests (no podman needed here).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { contextFiles } from './podman.ts';

test('the hashed build context: sources in, dependencies, data, build output and tests out', () => {
  const files = contextFiles();
  for (const f of [
    'package.json',
    'package-lock.json',
    'bin/mmgw.js',
    'scripts/build.ts',
    'server/cli/main.ts',
    'admin/ui/src/main.ts',
  ])
    assert.ok(files.includes(f), `${f} in the context`);
  for (const f of files) {
    assert.doesNotMatch(f, /(^|\/)(node_modules|data|\.git)\//, f);
    assert.doesNotMatch(f, /\.test\.ts$/, f);
    assert.doesNotMatch(f, /^(dist|test|admin\/ui\/dist)\//, f);
    assert.doesNotMatch(f, /\.key$/, f);
  }
});

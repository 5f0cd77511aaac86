#!/usr/bin/env node
// Runs every *.test.ts under the source folders with Node's own test runner
// (Node 20 has no glob support in --test, so the list is built here).
// `npm test -- server/edge` runs only files whose path contains one of the arguments.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const roots = ['device-protocol', 'server', 'transcoder', 'admin', 'testing', 'test'];
const skip = new Set(['node_modules', 'bench', 'output', 'data']);

function walk(dir, out) {
  for (const name of readdirSync(dir)) {
    if (skip.has(name)) continue;
    const path = join(dir, name);
    if (statSync(path).isDirectory()) walk(path, out);
    else if (name.endsWith('.test.ts')) out.push(relative(root, path));
  }
  return out;
}

const filters = process.argv.slice(2);
const files = roots
  .flatMap((r) => {
    try {
      return walk(join(root, r), []);
    } catch {
      return [];
    }
  })
  .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
  .sort();

if (files.length === 0) {
  console.error('no test files matched');
  process.exit(1);
}

const result = spawnSync(
  process.execPath,
  ['--import', 'tsx', '--test', '--test-concurrency=2', '--test-timeout=300000', ...files],
  {
    cwd: root,
    stdio: 'inherit',
    env: { ...process.env, MMGW_LOG_LEVEL: process.env.MMGW_LOG_LEVEL ?? 'silent' },
  },
);
process.exit(result.status ?? 1);

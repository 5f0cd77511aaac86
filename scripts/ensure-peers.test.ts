import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { INOTIFY_INSTANCES, INSTALL_COMMAND, type PeerFacts, planPeers, readFacts } from './ensure-peers.ts';

const facts = (f: Partial<PeerFacts>): PeerFacts => ({
  missing: [],
  root: false,
  sudo: false,
  inotifyInstances: INOTIFY_INSTANCES,
  ...f,
});

test('everything present: nothing to do, whoever runs it', () => {
  for (const who of [{ root: true }, { sudo: true }, {}]) assert.deepEqual(planPeers(facts(who)), []);
});

test('missing packages are installed as root directly, with sudo through sudo', () => {
  assert.deepEqual(planPeers(facts({ missing: ['prosody', 'podman'], root: true })), [
    { kind: 'install', packages: ['prosody', 'podman'], sudo: false },
  ]);
  assert.deepEqual(planPeers(facts({ missing: ['prosody'], sudo: true })), [
    { kind: 'install', packages: ['prosody'], sudo: true },
  ]);
});

test('missing packages without root or sudo: stop at once with the one command to run', () => {
  const steps = planPeers(facts({ missing: ['nats-server', 'chromium'], inotifyInstances: 128 }));
  assert.equal(steps.length, 1);
  const [stop] = steps;
  assert.equal(stop?.kind, 'stop');
  assert.ok(stop?.kind === 'stop' && stop.message.includes(`\n  ${INSTALL_COMMAND}\n`), stop?.kind);
  assert.ok(stop?.kind === 'stop' && stop.message.includes('nats-server chromium'));
});

test('a low inotify limit is raised when allowed, else only warned about', () => {
  assert.deepEqual(planPeers(facts({ root: true, inotifyInstances: 128 })), [
    { kind: 'raise-inotify', sudo: false },
  ]);
  assert.deepEqual(planPeers(facts({ sudo: true, missing: ['runc'], inotifyInstances: 128 })), [
    { kind: 'install', packages: ['runc'], sudo: true },
    { kind: 'raise-inotify', sudo: true },
  ]);
  assert.deepEqual(
    planPeers(facts({ inotifyInstances: 128 })).map((s) => s.kind),
    ['warn'],
  );
  assert.deepEqual(planPeers(facts({ inotifyInstances: undefined })), []);
});

test('install-peers.sh --check names the packages whose binaries it cannot find, and installs nothing', () => {
  const script = fileURLToPath(new URL('install-peers.sh', import.meta.url));
  // A PATH with nothing on it: every package found by command name is missing,
  // those found by absolute path depend on this machine (so only checked by name).
  const bare = spawnSync('/bin/bash', [script, '--check'], {
    encoding: 'utf8',
    env: { PATH: '/nonexistent' },
  });
  assert.equal(bare.status, 0, bare.stderr);
  const missing = bare.stdout.trim().split(' ');
  for (const pkg of ['prosody', 'podman', 'podman-compose', 'runc', 'gcc'])
    assert.ok(missing.includes(pkg), pkg);
  // On this machine (the suite runs here), readFacts agrees with the script's own PATH lookup.
  const here = spawnSync('bash', [script, '--check'], { encoding: 'utf8' });
  assert.deepEqual(readFacts().missing, here.stdout.split(/\s+/).filter(Boolean));
});

test('run by a user who may not install, on a machine without the peers: exit 1 at once, naming the command', (t) => {
  // A PATH with bash alone: every peer found by command name is missing (nothing is uninstalled).
  const bin = mkdtempSync(join(tmpdir(), 'ensure-peers-'));
  t.after(() => rmSync(bin, { recursive: true, force: true }));
  chmodSync(bin, 0o755);
  const which = (name: string) =>
    spawnSync('bash', ['-c', `command -v ${name}`], { encoding: 'utf8' }).stdout.trim();
  symlinkSync(which('bash'), join(bin, 'bash'));
  const script = fileURLToPath(new URL('ensure-peers.ts', import.meta.url));
  const node = [process.execPath, '--import', 'tsx', script];
  // As root it would install: run it as nobody instead (setpriv is util-linux, on every Debian).
  const argv =
    process.getuid?.() === 0
      ? [which('setpriv'), '--reuid=65534', '--regid=65534', '--clear-groups', ...node]
      : node;
  const r = spawnSync(argv[0]!, argv.slice(1), {
    encoding: 'utf8',
    cwd: fileURLToPath(new URL('..', import.meta.url)),
    env: { PATH: bin, HOME: bin },
  });
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /not installed: .*prosody/);
  assert.ok(r.stderr.includes(`\n  ${INSTALL_COMMAND}\n`), r.stderr);
});

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const script = fileURLToPath(new URL('peers.ts', import.meta.url));
const peers = (...args: string[]) =>
  spawnSync(process.execPath, ['--import', 'tsx', script, ...args], { encoding: 'utf8', timeout: 60_000 });

test('npm run peers -- --help prints the options and starts nothing', () => {
  for (const flag of ['--help', '-h']) {
    const r = peers(flag);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^usage: npm run peers -- \[options\]/);
    assert.match(r.stdout, /--no-push-hook/);
    // What it prints once servers run.
    assert.doesNotMatch(r.stdout, /Dovecot IMAP +127/);
  }
});

test('an unknown option or a bad port is refused before anything starts', () => {
  const unknown = peers('--imap', '1143');
  assert.equal(unknown.status, 2);
  assert.match(unknown.stderr, /Unknown option '--imap'[\s\S]*usage: npm run peers/);
  const bad = peers('--smtp-port', 'x');
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--smtp-port needs a port number/);
  assert.equal(bad.stdout, '');
});

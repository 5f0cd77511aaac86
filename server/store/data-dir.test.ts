import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { GatewayError } from '../../device-protocol/errors.ts';
import { ensurePrivateDir, LOCK_FILE, lockDataDir, makePrivate } from './data-dir.ts';

function scratch(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'mmgw-datadir-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const modeOf = (path: string) => statSync(path).mode & 0o777;

test('ensurePrivateDir creates 0700 directories and narrows an open one', (t) => {
  const root = scratch(t);
  const fresh = join(root, 'a', 'b');
  ensurePrivateDir(fresh);
  assert.equal(modeOf(fresh), 0o700);
  const open = join(root, 'open');
  mkdirSync(open, { mode: 0o755 });
  chmodSync(open, 0o755);
  ensurePrivateDir(open);
  assert.equal(modeOf(open), 0o700);
});

test('makePrivate narrows files to 0600 and directories to 0700 below the data directory', (t) => {
  const root = scratch(t);
  mkdirSync(join(root, 'records'), { mode: 0o755 });
  chmodSync(join(root, 'records'), 0o755);
  writeFileSync(join(root, 'records', 'data.mdb'), 'x', { mode: 0o644 });
  chmodSync(join(root, 'records', 'data.mdb'), 0o644);
  writeFileSync(join(root, 'registry.mdb'), 'x', { mode: 0o664 });
  chmodSync(join(root, 'registry.mdb'), 0o664);
  makePrivate(root);
  assert.equal(modeOf(join(root, 'records')), 0o700);
  assert.equal(modeOf(join(root, 'records', 'data.mdb')), 0o600);
  assert.equal(modeOf(join(root, 'registry.mdb')), 0o600);
});

test('the lock file is 0600, names this process, and is removed on release', (t) => {
  const dir = scratch(t);
  const lock = lockDataDir(dir);
  const path = join(dir, LOCK_FILE);
  assert.equal(modeOf(path), 0o600);
  assert.equal(JSON.parse(readFileSync(path, 'utf8')).pid, process.pid);
  lock.release();
  assert.equal(existsSync(path), false);
});

test('a second gateway is refused while the first one lives, with its pid; a dead owner is taken over', async (t) => {
  const dir = scratch(t);
  const owner = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
  t.after(() => owner.kill('SIGKILL'));
  const pid = owner.pid;
  assert.ok(pid !== undefined);
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const started = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  writeFileSync(join(dir, LOCK_FILE), JSON.stringify({ pid, started, at: '2026-12-07T00:00:00.000Z' }));

  assert.throws(
    () => lockDataDir(dir),
    (err: unknown) =>
      err instanceof GatewayError &&
      err.code === 'config.invalid' &&
      err.message.includes(`pid ${pid}`) &&
      err.message.includes(dir),
  );

  const gone = new Promise((r) => owner.once('exit', r));
  owner.kill('SIGKILL');
  await gone;
  const lock = lockDataDir(dir);
  assert.equal(JSON.parse(readFileSync(join(dir, LOCK_FILE), 'utf8')).pid, process.pid);
  lock.release();
});

test('a lock naming a live pid with another start time (a reused pid) is stale', (t) => {
  const dir = scratch(t);
  // pid 1 always exists; its recorded start time here is not its real one.
  writeFileSync(join(dir, LOCK_FILE), JSON.stringify({ pid: 1, started: '-1', at: 'then' }));
  const lock = lockDataDir(dir);
  lock.release();
});

test('an unreadable lock (a crash while writing it) is stale', (t) => {
  const dir = scratch(t);
  writeFileSync(join(dir, LOCK_FILE), '{"pid": 12');
  lockDataDir(dir).release();
});

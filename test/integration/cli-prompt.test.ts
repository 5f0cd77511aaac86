/**
 * `mmgw admin user add` at a real terminal (script(1) gives it a pty): the
 * password is asked once, without echo, and one too short is refused at once.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { eventually, tempDir } from '../../testing/index.ts';
import { MMGW_BIN, runMmgw } from '../harness/gateway.ts';

/** Runs `mmgw ARGS` on a pty; types `typed` once the prompt shows; resolves with what the terminal showed. */
async function atTerminal(args: string[], typed: string): Promise<{ code: number | null; screen: string }> {
  const command = ['exec', process.execPath, MMGW_BIN, ...args].join(' ');
  const child = spawn('script', ['-qfec', command, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let screen = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (screen += d));
  const exit = new Promise<number | null>((resolve) => child.once('exit', resolve));
  try {
    await eventually('the prompt', () => screen.includes('password for'), { timeoutMs: 30_000 });
    child.stdin.write(typed);
    return { code: await exit, screen };
  } finally {
    child.kill('SIGKILL');
  }
}

test('admin user add asks for the password once; a short one is refused at once', async (t) => {
  const data = join(tempDir(t), 'data');
  const add = ['admin', 'user', 'add', '--name', 'alice', '--role', 'admin', '--data', data];
  const short = await atTerminal(add, 'short\r');
  assert.equal(short.code, 2, short.screen);
  assert.match(short.screen, /mmgw: password: at least \d+ characters/);
  assert.equal(short.screen.split('password for').length - 1, 1, short.screen);
  assert.doesNotMatch(short.screen, /short/, 'not echoed');

  const good = await atTerminal(add, 'a long enough password\r');
  assert.equal(good.code, 0, good.screen);
  assert.equal(good.screen.split('password for').length - 1, 1, 'asked once');
  assert.match(good.screen, /added admin alice/);
  assert.doesNotMatch(good.screen, /a long enough password/, 'not echoed');
  const list = await runMmgw(['admin', 'user', 'list', '--data', data, '--json']);
  assert.deepEqual(
    JSON.parse(list.stdout).items.map((u: { name: string }) => u.name),
    ['alice'],
  );
});

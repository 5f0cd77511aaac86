import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { test } from 'node:test';
import { processAlive } from './processes.ts';

test('processAlive: this process is, a child that exited (and was reaped) is not', async () => {
  assert.equal(processAlive(process.pid), true);
  const child = spawn(process.execPath, ['-e', '0'], { stdio: 'ignore' });
  assert.equal(processAlive(child.pid!), true);
  await once(child, 'exit');
  assert.equal(processAlive(child.pid!), false);
});

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { describe, test } from 'node:test';
import { eventually } from '../../testing/index.ts';
import { RssMonitor, treeRssBytes } from './memory.ts';

describe('gateway memory', () => {
  test('the RSS of a process tree counts its children', async (t) => {
    const alone = treeRssBytes(process.pid);
    assert.ok(alone.bytes > 10 * 1024 * 1024 && alone.processes >= 1);
    const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
    t.after(() => child.kill('SIGKILL'));
    await eventually('the child counted', () => treeRssBytes(process.pid).processes > alone.processes);
    assert.ok(treeRssBytes(process.pid).bytes > alone.bytes);
    child.kill('SIGKILL');
    await once(child, 'exit');
    assert.deepEqual(treeRssBytes(child.pid ?? 0), { bytes: 0, processes: 0 });
  });

  test('the monitor reports passing its bound once, and knows its peak', () => {
    const over: number[] = [];
    const m = new RssMonitor(process.pid, (s) => over.push(s.bytes), 1);
    m.sample();
    m.sample();
    assert.equal(over.length, 1);
    assert.equal(m.peak()?.bytes, Math.max(...m.samples.map((s) => s.bytes)));
  });
});

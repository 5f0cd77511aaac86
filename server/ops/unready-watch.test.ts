import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Readiness } from './http.ts';
import { watchUnready } from './unready-watch.ts';

function rig() {
  let state: Readiness = { ready: false, reasons: ['transport: waiting for the cluster’s shared tables'] };
  const lines: { level: string; obj: Record<string, unknown>; msg: string }[] = [];
  const logger = {
    warn: (obj: Record<string, unknown>, msg: string) => lines.push({ level: 'warn', obj, msg }),
    info: (obj: Record<string, unknown>, msg: string) => lines.push({ level: 'info', obj, msg }),
  };
  const watch = watchUnready(() => state, logger as never, { afterMs: 20_000, everyMs: 30_000 });
  return { watch, lines, set: (r: Readiness) => void (state = r) };
}

test('a node unready past the grace time is warned about with its reasons, then once per period', (t) => {
  const { watch, lines } = rig();
  t.after(() => watch.stop());
  watch.check(0);
  watch.check(19_999);
  assert.equal(lines.length, 0);
  watch.check(20_000);
  assert.deepEqual(lines, [
    {
      level: 'warn',
      obj: { unreadyForMs: 20_000, reasons: ['transport: waiting for the cluster’s shared tables'] },
      msg: 'node is still not ready',
    },
  ]);
  watch.check(49_999);
  assert.equal(lines.length, 1);
  watch.check(50_000);
  assert.equal(lines.length, 2);
  assert.equal(lines[1]?.obj.unreadyForMs, 50_000);
});

test('ready again: one info line, and the grace time starts over', (t) => {
  const { watch, lines, set } = rig();
  t.after(() => watch.stop());
  watch.check(0);
  watch.check(25_000);
  set({ ready: true, reasons: [] });
  watch.check(26_000);
  assert.deepEqual(lines.at(-1), {
    level: 'info',
    obj: { unreadyForMs: 26_000 },
    msg: 'node is ready again',
  });
  set({ ready: false, reasons: ['edge: no transport node known'] });
  watch.check(30_000);
  watch.check(49_000);
  assert.equal(lines.length, 2, 'a new spell of unreadiness gets the grace time again');
  watch.check(50_000);
  assert.equal(lines.at(-1)?.level, 'warn');
});

test('a draining node is not warned about; a short spell says nothing', (t) => {
  const { watch, lines, set } = rig();
  t.after(() => watch.stop());
  set({ ready: false, reasons: ['node is draining'] });
  watch.check(0);
  watch.check(100_000);
  set({ ready: false, reasons: ['x'] });
  watch.check(100_001);
  set({ ready: true, reasons: [] });
  watch.check(110_000);
  assert.deepEqual(lines, []);
});

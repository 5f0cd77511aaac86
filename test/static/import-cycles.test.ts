/**
 * No import cycles (type imports included) inside the folders that were split
 * into pieces with narrow hosts: a piece depends on its host interface, never
 * back on the coordinator, so each can be read and tested alone.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
const FOLDERS = [
  'server/edge',
  'server/transport',
  'server/bus',
  'server/router',
  'server/net',
  'server/cli',
  'device-protocol',
  'transcoder',
  'server/store',
];

/** Every cycle among the non-test .ts files below `base`, as lists of paths. */
function importCycles(base: string): string[][] {
  const files: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else if (path.endsWith('.ts') && !path.endsWith('.test.ts') && !path.endsWith('.d.ts'))
        files.push(path);
    }
  };
  walk(base);
  const inside = new Set(files);
  const edges = new Map<string, string[]>();
  for (const f of files) {
    const text = readFileSync(f, 'utf8');
    const targets = [...text.matchAll(/(?:import|export)[^'";]*?from\s+'(\.[^']+)'/g)]
      .map((m) => resolve(dirname(f), m[1] ?? ''))
      .filter((t) => inside.has(t));
    edges.set(f, targets);
  }
  const cycles: string[][] = [];
  const state = new Map<string, 'open' | 'done'>();
  const visit = (f: string, stack: string[]) => {
    state.set(f, 'open');
    stack.push(f);
    for (const t of edges.get(f) ?? []) {
      if (state.get(t) === 'open')
        cycles.push([...stack.slice(stack.indexOf(t)), t].map((p) => relative(root, p)));
      else if (state.get(t) === undefined) visit(t, stack);
    }
    stack.pop();
    state.set(f, 'done');
  };
  for (const f of files) if (state.get(f) === undefined) visit(f, []);
  return cycles;
}

for (const folder of FOLDERS) {
  test(`no import cycle in ${folder}`, () => {
    assert.deepEqual(
      importCycles(folder).map((c) => c.join(' → ')),
      [],
    );
  });
}

test('the cycle finder sees a cycle through type imports', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mmgw-cycles-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'a.ts'), "import type { B } from './b.ts';\nexport interface A { b: B }\n");
  writeFileSync(join(dir, 'b.ts'), "import type { A } from './a.ts';\nexport interface B { a: A }\n");
  writeFileSync(join(dir, 'c.ts'), "export { type A } from './a.ts';\n");
  assert.equal(importCycles(dir).length, 1);
});

/**
 * The project's own description stays inside the repository and names files
 * that exist: every relative link of the README and docs/ resolves to a file
 * here (no link leaves the repository), and every source path the
 * architecture map names is a real file or folder.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));

function markdownFiles(): string[] {
  const out = ['README.md', 'device-protocol/SPEC.md', 'test/bench/README.md'];
  const walk = (dir: string) => {
    for (const e of readdirSync(join(root, dir), { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.md')) out.push(p);
    }
  };
  walk('docs');
  return out;
}

test('relative links in the README and docs resolve inside the repository', () => {
  const broken: string[] = [];
  for (const file of markdownFiles()) {
    const text = readFileSync(join(root, file), 'utf8');
    for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      const target = m[1] ?? '';
      if (/^[a-z]+:/i.test(target) || target.startsWith('#')) continue;
      const path = resolve(dirname(join(root, file)), target.split('#')[0] ?? '');
      const inside = !relative(root, path).startsWith('..');
      if (!inside || !existsSync(path)) broken.push(`${file}: ${target}`);
    }
  }
  assert.deepEqual(broken, []);
});

test('every source path docs/architecture.md names exists', () => {
  const text = readFileSync(join(root, 'docs/architecture.md'), 'utf8');
  const missing: string[] = [];
  const named = new Set<string>();
  for (const m of text.matchAll(
    /\b((?:server|device-protocol|admin|transcoder|testing|test|scripts|docker)\/[\w./-]*[\w/])/g,
  )) {
    named.add(m[1] ?? '');
  }
  for (const path of named) {
    // A bare file name after a folder's path ("frames/*.ts") is a pattern, not a file.
    if (path.includes('*')) continue;
    if (!existsSync(join(root, path))) missing.push(path);
  }
  assert.ok(named.size > 20, `only ${named.size} paths found: the pattern no longer matches the map`);
  assert.deepEqual(missing, []);
});

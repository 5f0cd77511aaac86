/**
 * The import rule between the top-level folders (docs/architecture.md,
 * "Layout"), as a checker that imports.test.ts runs on the tree and on
 * fixtures:
 *
 *   - a static import (type imports and `export … from` included) of another
 *     top-level folder names that folder's index.ts;
 *   - a dynamic import may also name its role entry, `<folder>/role.ts`
 *     (node.ts loads a role only on a node that runs it);
 *   - device-protocol's index.ts is the whole SDK, and ESM evaluates every
 *     module an index re-exports: a server process that runs no handset
 *     code (the CLI, the transcoder, an edge worker) imports instead one of
 *     the modules that index.ts re-exports (its public modules), never one
 *     it does not;
 *   - tests (*.test.ts, test/, testing/) may reach internals: they test them.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

/** A static or dynamic import (or `export … from`) of a relative path, as written. */
export interface ImportOf {
  specifier: string;
  dynamic: boolean;
}

const SPECIFIER = /(?:\bfrom\s+|\bimport\s+|\b(import\s*\(\s*))'([^']+)'/g;

export function importsOf(source: string): ImportOf[] {
  return [...source.matchAll(SPECIFIER)].map((m) => ({ specifier: m[2] ?? '', dynamic: m[1] !== undefined }));
}

/** Every .ts (and .js) file below `dir` of `root` but tests and what builds write, relative to `root`. */
export function sourceFiles(root: string, dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(join(root, dir))) {
    const path = `${dir}/${name}`;
    if (name === 'dist' || name === 'node_modules') continue;
    if (statSync(join(root, path)).isDirectory()) sourceFiles(root, path, out);
    else if (/\.(ts|js)$/.test(name) && !name.endsWith('.test.ts') && !name.endsWith('.d.ts')) out.push(path);
  }
  return out;
}

/** An import the rule lets through, and why. */
export interface ImportException {
  /** The importing file, or a folder prefix ending in "/". */
  from: string;
  /** The imported file; absent: any. */
  to?: string;
  why: string;
}

export interface ImportRuleOptions {
  root: string;
  /** The top-level folders the rule protects (their files are imported only as the rule says). */
  folders: readonly string[];
  /** The files checked, relative to `root` (of those folders and of entry points such as scripts/). */
  files: readonly string[];
  /** Folders whose public modules (what their index.ts re-exports) may be imported directly. */
  publicModules?: readonly string[];
  exceptions?: readonly ImportException[];
}

/** The modules `folder/index.ts` re-exports from, relative to the root. */
export function reexportedModules(root: string, folder: string): Set<string> {
  const index = `${folder}/index.ts`;
  const text = readFileSync(join(root, index), 'utf8');
  const out = new Set<string>();
  for (const m of text.matchAll(/^export\b[^;]*?\bfrom\s+'(\.[^']+)'/gm))
    out.add(relative(root, resolve(root, folder, m[1] ?? '')));
  return out;
}

/** `file imports spec` for every import across top-level folders that breaks the rule. */
export function importRuleViolations(options: ImportRuleOptions): string[] {
  const { root, folders } = options;
  const publicOf = new Map((options.publicModules ?? []).map((f) => [f, reexportedModules(root, f)]));
  const excepted = (file: string, target: string) =>
    (options.exceptions ?? []).some(
      (e) =>
        (e.from.endsWith('/') ? file.startsWith(e.from) : file === e.from) &&
        (e.to === undefined || e.to === target),
    );
  const out: string[] = [];
  for (const file of options.files) {
    const own = file.split('/')[0];
    for (const { specifier, dynamic } of importsOf(readFileSync(join(root, file), 'utf8'))) {
      if (!specifier.startsWith('.')) continue;
      const target = relative(root, resolve(root, dirname(file), specifier));
      const folder = target.split('/')[0] ?? '';
      if (folder === own || !folders.includes(folder)) continue;
      if (target === `${folder}/index.ts`) continue;
      if (dynamic && target === `${folder}/role.ts`) continue;
      if (publicOf.get(folder)?.has(target)) continue;
      if (excepted(file, target)) continue;
      out.push(`${file} imports ${specifier}`);
    }
  }
  return out;
}

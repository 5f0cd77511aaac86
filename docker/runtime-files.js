// Build stage of docker/Dockerfile: copies into the directory given what the
// runtime image holds, and nothing else: package.json, bin/, dist/, the
// production node_modules (pruned before), the admin UI's build and the
// files its build.json lists. The admin role checks that build against those
// inputs at start (admin/ui/build.ts isBuildFresh) and would rebuild it
// without them, which needs esbuild, absent at run time.
import { cpSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

const out = process.argv[2];
if (!out) throw new Error('usage: node docker/runtime-files.js OUT_DIR');
// preserveTimestamps: the UI build must stay newer than its inputs.
const copy = (path) =>
  cpSync(path, join(out, path), { recursive: true, preserveTimestamps: true, verbatimSymlinks: true });
for (const path of ['package.json', 'bin', 'dist', 'node_modules', 'admin/ui/dist']) copy(path);
const { inputs } = JSON.parse(readFileSync('admin/ui/dist/build.json', 'utf8'));
for (const input of inputs) copy(resolve('admin/ui', input).slice(process.cwd().length + 1));

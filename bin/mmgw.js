#!/usr/bin/env node
// Entry point of the `mmgw` command: runs the build in dist/ (`npm ci` makes
// it through the `prepare` script; `npm run build` remakes it). From the
// sources, without a build: `node --import tsx server/cli/main.ts …`.
import { existsSync } from 'node:fs';

const main = new URL('../dist/server/cli/main.js', import.meta.url);
if (!existsSync(main)) {
  process.stderr.write('mmgw: dist/ is missing: run `npm run build` first (npm ci does it)\n');
  process.exit(2);
}
await import(main.href);

#!/usr/bin/env node
// Entry point of the `mmgw` command: loads the TypeScript sources through tsx,
// so that a fresh clone runs after `npm ci` with no build step.
import { register } from 'tsx/esm/api';

register();
await import('../server/cli/main.ts');

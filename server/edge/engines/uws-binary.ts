/**
 * Whether uWebSockets.js can run here. The package ships one native binary
 * per platform, architecture and Node ABI (`process.versions.modules`): the
 * pinned build has them for Node 20 and older, none for Node 24 (ABI 137).
 * Without one it does not fail: it prints to the console and falls back to a
 * JavaScript shim that is slower than our own portable engine. So the edge
 * asks first and, when there is no binary, says so and runs the portable
 * engine instead (edge/role.ts).
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

export interface RuntimeFacts {
  platform: string;
  arch: string;
  /** Node's module ABI version, process.versions.modules. */
  abi: string;
  /** The package's directory, undefined when it is not installed. */
  packageDir: string | undefined;
  exists(path: string): boolean;
}

function packageDir(): string | undefined {
  try {
    const require = createRequire(import.meta.url);
    return dirname(require.resolve('@trufflesuite/uws-js-unofficial/package.json'));
  } catch {
    return undefined;
  }
}

export function currentRuntime(): RuntimeFacts {
  return {
    platform: process.platform,
    arch: process.arch,
    abi: process.versions.modules,
    packageDir: packageDir(),
    exists: existsSync,
  };
}

/** Why uWebSockets.js cannot run here, or undefined when it can. */
export function uwsUnavailable(facts: RuntimeFacts = currentRuntime()): string | undefined {
  if (facts.packageDir === undefined) return 'the uWebSockets.js package is not installed';
  const binary = `uws_${facts.platform}_${facts.arch}_${facts.abi}.node`;
  if (!facts.exists(join(facts.packageDir, 'binaries', binary))) {
    return `uWebSockets.js has no binary for this Node (ABI ${facts.abi}, ${facts.platform}-${facts.arch}: no ${binary})`;
  }
  return undefined;
}

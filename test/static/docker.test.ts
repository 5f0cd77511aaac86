// No Docker engine runs here, so the docker/ files are checked statically:
// they must parse, copy only what exists, run the build in dist/ (not the
// TypeScript sources), and start mmgw with flags and roles that `mmgw start`
// really accepts.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { PRODUCT_FOLDERS } from '../../scripts/build.ts';
import { ensureBuilt } from '../harness/dist.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const dockerfile = readFileSync(join(root, 'docker/Dockerfile'), 'utf8');
const roles = new Set(['all', 'edge', 'transport', 'transcoder', 'admin']);
/** The Dockerfile's instructions, continuation lines joined, comments left out. */
const instructions = dockerfile
  .replace(/\\\n/g, ' ')
  .split('\n')
  .filter((l) => l.trim() !== '' && !l.trimStart().startsWith('#'));
const indexOf = (re: RegExp) => instructions.findIndex((l) => re.test(l));

// startHelp() runs `mmgw`, which runs dist/.
await ensureBuilt();

function startHelp(): string {
  return execFileSync(process.execPath, [join(root, 'bin/mmgw.js'), 'start', '--help'], {
    cwd: root,
    encoding: 'utf8',
  });
}

describe('docker files', () => {
  test('the Dockerfile builds on Debian 12 (glibc 2.36, what the pinned uWS build needs) and copies what exists', () => {
    assert.match(dockerfile, /^FROM node:20-bookworm/m);
    const copies = [...dockerfile.matchAll(/^COPY\s+(\S+)\s+/gm)].map((m) => m[1]!);
    assert.ok(copies.length > 0);
    for (const source of copies)
      assert.ok(existsSync(join(root, source)), `COPY ${source} names a missing path`);
  });

  test('the image builds dist/ after copying the sources, drops the build tools, and runs the build', () => {
    const build = indexOf(/^RUN .*npm run build/);
    assert.ok(build > 0, 'a RUN npm run build');
    for (const source of [...PRODUCT_FOLDERS, 'bin', 'scripts/build.ts']) {
      const copy = indexOf(new RegExp(`^COPY ${source}\\s`));
      assert.ok(copy >= 0 && copy < build, `COPY ${source} before the build`);
    }
    // tsx, esbuild and typescript are dev dependencies: pruned after the build, never at run time.
    assert.match(instructions[build]!, /npm run build && npm prune --omit=dev/);
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
    for (const tool of ['tsx', 'esbuild', 'typescript']) {
      assert.equal(pkg.dependencies[tool], undefined, `${tool} is not a runtime dependency`);
      assert.ok(pkg.devDependencies[tool], `${tool} is a dev dependency`);
    }
    assert.deepEqual(
      instructions.filter((l) => /^(ENTRYPOINT|CMD) /.test(l)),
      ['ENTRYPOINT ["node", "bin/mmgw.js"]', 'CMD ["start"]'],
    );
    assert.doesNotMatch(
      instructions.filter((l) => /^(ENV|ENTRYPOINT|CMD) /.test(l)).join('\n'),
      /tsx|\.ts\b/,
    );
    // bin/mmgw.js runs dist/server/cli/main.js, with no TypeScript loader.
    const bin = readFileSync(join(root, 'bin/mmgw.js'), 'utf8');
    assert.match(bin, /'\.\.\/dist\/server\/cli\/main\.js'/);
    assert.doesNotMatch(bin.replace(/^\/\/.*$/gm, ''), /tsx/);
  });

  for (const file of ['compose.yml', 'compose.cluster.yml']) {
    test(`${file} parses and starts mmgw with accepted flags and roles`, () => {
      const doc = parse(readFileSync(join(root, 'docker', file), 'utf8'));
      const help = startHelp();
      const services = Object.entries<any>(doc.services);
      assert.ok(services.length > 0);
      for (const [name, service] of services) {
        // Bind mounts name files of this repository (relative to docker/).
        for (const v of service.volumes ?? []) {
          const [source = ''] = String(v).split(':');
          if (source.startsWith('.'))
            assert.ok(existsSync(join(root, 'docker', source)), `${name}: mounts missing ${source}`);
        }
        if (!service.build) continue;
        assert.equal(service.build.dockerfile, 'docker/Dockerfile', `${name}: build`);
        const command: string[] = service.command ?? ['start'];
        assert.equal(command[0], 'start', `${name}: command`);
        for (let i = 1; i < command.length; i++) {
          const arg = command[i]!;
          if (!arg.startsWith('--')) continue;
          assert.ok(help.includes(arg), `${name}: mmgw start does not know ${arg}`);
          if (arg === '--role')
            for (const r of (command[i + 1] ?? '').split(',')) assert.ok(roles.has(r), `${name}: role ${r}`);
        }
      }
    });
  }
});

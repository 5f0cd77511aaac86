// No Docker engine runs here, so the docker/ files are checked statically:
// they must parse, copy only what exists, and start mmgw with flags and roles
// that `mmgw start` really accepts.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

const root = fileURLToPath(new URL('../..', import.meta.url));
const dockerfile = readFileSync(join(root, 'docker/Dockerfile'), 'utf8');
const roles = new Set(['all', 'edge', 'transport', 'transcoder', 'admin']);

function startHelp(): string {
  return execFileSync(process.execPath, [join(root, 'bin/mmgw.js'), 'start', '--help'], {
    cwd: root,
    encoding: 'utf8',
  });
}

describe('docker files', () => {
  test('the Dockerfile builds on Debian 12 (glibc 2.36, what the pinned uWS build needs) and copies what exists', () => {
    assert.match(dockerfile, /^FROM node:20-bookworm/m);
    const copies = [...dockerfile.matchAll(/^COPY\s+(\S+)\s+/gm)].map((m) => m[1]);
    assert.ok(copies.length > 0);
    for (const source of copies)
      assert.ok(existsSync(join(root, source)), `COPY ${source} names a missing path`);
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
          const source = String(v).split(':')[0];
          if (source.startsWith('.'))
            assert.ok(existsSync(join(root, 'docker', source)), `${name}: mounts missing ${source}`);
        }
        if (!service.build) continue;
        assert.equal(service.build.dockerfile, 'docker/Dockerfile', `${name}: build`);
        const command: string[] = service.command ?? ['start'];
        assert.equal(command[0], 'start', `${name}: command`);
        for (let i = 1; i < command.length; i++) {
          const arg = command[i];
          if (!arg.startsWith('--')) continue;
          assert.ok(help.includes(arg), `${name}: mmgw start does not know ${arg}`);
          if (arg === '--role')
            for (const r of command[i + 1].split(',')) assert.ok(roles.has(r), `${name}: role ${r}`);
        }
      }
    });
  }
});

// The docker/ files checked without an engine (test/containers builds and
// starts them with podman where it is installed): they must parse, copy only
// what exists, run the build in dist/ (not the TypeScript sources), and start
// mmgw with settings and roles that `mmgw start` really accepts.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { PRODUCT_FOLDERS } from '../../scripts/build.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const dockerfile = readFileSync(join(root, 'docker/Dockerfile'), 'utf8');
const roles = new Set(['all', 'edge', 'transport', 'transcoder', 'admin']);
/** The Dockerfile's instructions, continuation lines joined, comments left out. */
const instructions = dockerfile
  .replace(/\\\n/g, ' ')
  .split('\n')
  .filter((l) => l.trim() !== '' && !l.trimStart().startsWith('#'));
const indexOf = (re: RegExp) => instructions.findIndex((l) => re.test(l));

describe('docker files', () => {
  test('the Dockerfile builds on Debian 12 (glibc 2.36, what the pinned uWS build needs) and copies what exists', () => {
    assert.match(dockerfile, /^ARG NODE_IMAGE=node:20-bookworm/m);
    assert.deepEqual(
      instructions.filter((l) => l.startsWith('FROM ')),
      // biome-ignore lint/suspicious/noTemplateCurlyInString: the Dockerfile's own variable
      ['FROM ${NODE_IMAGE} AS build', 'FROM ${NODE_IMAGE}'],
    );
    const copies = [...dockerfile.matchAll(/^COPY\s+(?!--from)(\S+)\s+/gm)].map((m) => m[1]!);
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
    assert.match(instructions[build]!, /npm run build -- --no-types\s+&& npm prune --omit=dev/);
    // The runtime stage copies only what docker/runtime-files.js gathered from the build stage.
    assert.ok(indexOf(/^COPY --from=build \/runtime\/ /) > build);
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
    for (const tool of ['tsx', 'esbuild', 'typescript']) {
      assert.equal(pkg.dependencies[tool], undefined, `${tool} is not a runtime dependency`);
      assert.ok(pkg.devDependencies[tool], `${tool} is a dev dependency`);
    }
    assert.deepEqual(
      instructions.filter((l) => /^(ENTRYPOINT|CMD) /.test(l)),
      ['ENTRYPOINT ["node", "/app/bin/mmgw.js"]', 'CMD ["start"]'],
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
    test(`${file} parses and starts mmgw with accepted settings and roles`, () => {
      const text = readFileSync(join(root, 'docker', file), 'utf8');
      const doc = parse(text, { merge: true });
      // docker-compose 1.x refuses a top-level name; podman-compose 1.0.3 ignores it.
      assert.equal(doc.name, undefined);
      const config = readFileSync(join(root, 'server/config.ts'), 'utf8');
      const services = Object.entries<any>(doc.services);
      assert.ok(services.length > 0);
      for (const [name, service] of services) {
        assert.equal(service.restart, 'unless-stopped', `${name}: restart policy`);
        // Bind mounts name files of this repository (relative to docker/).
        for (const v of service.volumes ?? []) {
          const [source = ''] = String(v).split(':');
          if (source.startsWith('.'))
            assert.ok(existsSync(join(root, 'docker', source)), `${name}: mounts missing ${source}`);
        }
        // Host ports come from variables (two stacks side by side, a test on free ports).
        for (const p of service.ports ?? [])
          assert.match(String(p), /^\$\{[A-Z_]+:-[\d.]+\}:\$\{[A-Z_]+:-\d+\}:\d+$/);
        for (const dep of Object.values<any>(
          Array.isArray(service.depends_on) ? {} : (service.depends_on ?? {}),
        ))
          assert.equal(dep.condition, 'service_healthy', `${name}: start waits for health`);
        if (!service.build) continue;
        assert.equal(service.build.dockerfile, 'docker/Dockerfile', `${name}: build`);
        assert.equal(service.command, undefined, `${name}: the image's start, configured by the environment`);
        for (const key of Object.keys(service.environment ?? {}))
          assert.ok(key === 'MMGW_CONFIG' || config.includes(`${key}:`), `${name}: mmgw reads no ${key}`);
        for (const r of String(service.environment?.MMGW_ROLE ?? 'all').split(','))
          assert.ok(roles.has(r), `${name}: role ${r}`);
      }
    });
  }

  test('the cluster: 3 NATS with JetStream, 2 admin, 2 transport, 2 edge, a transcoder, HAProxy', () => {
    const doc = parse(readFileSync(join(root, 'docker/compose.cluster.yml'), 'utf8'), { merge: true });
    const byRole = (role: string) =>
      Object.entries<any>(doc.services).filter(([, s]) => s.environment?.MMGW_ROLE === role).length;
    assert.deepEqual(['admin', 'transport', 'edge', 'transcoder'].map(byRole), [2, 2, 2, 1]);
    const nats = Object.entries<any>(doc.services).filter(([n]) => n.startsWith('nats-'));
    assert.equal(nats.length, 3);
    for (const [n, s] of nats) {
      assert.deepEqual(s.command.slice(2, 4), ['--server_name', n]);
      assert.ok(s.command.includes('--routes') && s.healthcheck, `${n}: routes and health check`);
    }
    assert.match(readFileSync(join(root, 'docker/nats.conf'), 'utf8'), /^jetstream \{/m);
    assert.match(doc.services.lb.image, /haproxy:/);
    assert.ok(doc.secrets['mmgw-config'].file, 'keys from a file, never the image');
  });
});

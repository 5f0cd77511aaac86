/**
 * Local stand-ins for the official base images that docker/Dockerfile and the
 * compose files name (node, nats, haproxy): no container registry is
 * reachable here, so each is made from this machine's own binaries (the node
 * that runs the tests, Debian's nats-server and haproxy) and the shared
 * libraries they load, with `podman import`, and tagged with the official
 * name. An image is remade only when what it is made from changed: its label
 * `mmgw.stand-in` holds a hash of the binaries, their libraries and the spec.
 *
 * The stand-ins keep the layout the compose files rely on (node and npm in
 * /usr/local/bin and a `node` user of uid 1000; nats-server and wget in
 * /usr/local/bin; haproxy in /usr/local/sbin with its config directory
 * /usr/local/etc/haproxy) and a POSIX shell with coreutils for RUN steps.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { podman } from './podman.ts';

export const NODE_IMAGE = 'docker.io/library/node:20-bookworm-slim';
export const NATS_IMAGE = 'docker.io/library/nats:2.10-alpine';
export const HAPROXY_IMAGE = 'docker.io/library/haproxy:2.6';

/** Raise when build() lays an image out differently: the hash then names new images. */
const LAYOUT = 1;

/** Tools a Dockerfile RUN step or a health check may call. */
const SHELL_TOOLS = [
  '/bin/sh',
  '/bin/dash',
  '/bin/mkdir',
  '/bin/chown',
  '/bin/chmod',
  '/bin/rm',
  '/bin/cp',
  '/bin/ln',
  '/bin/ls',
  '/bin/cat',
  '/usr/bin/env',
  '/usr/bin/id',
];

interface StandIn {
  image: string;
  /** Host file → path in the image (its libraries are added). */
  binaries: Array<[string, string]>;
  /** Host directory → path in the image, copied whole. */
  trees?: Array<[string, string]>;
  links?: Array<[string, string]>;
  passwd: string[];
  changes: string[];
}

function nodeStandIn(): StandIn {
  const npmDir = '/usr/lib/node_modules/npm';
  return {
    image: NODE_IMAGE,
    binaries: [
      [process.execPath, '/usr/local/bin/node'],
      ...SHELL_TOOLS.map((t): [string, string] => [t, t]),
    ],
    trees: [[npmDir, '/usr/local/lib/node_modules/npm']],
    links: [
      ['../lib/node_modules/npm/bin/npm-cli.js', '/usr/local/bin/npm'],
      ['../lib/node_modules/npm/bin/npx-cli.js', '/usr/local/bin/npx'],
    ],
    passwd: ['node:x:1000:1000::/home/node:/bin/sh'],
    changes: [
      'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      // An outbound TLS proxy re-signs the registry's certificate with this machine's CA.
      'ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt',
      'ENV NODE_VERSION=' + process.version.slice(1),
      'CMD ["node"]',
    ],
  };
}

function natsStandIn(): StandIn {
  return {
    image: NATS_IMAGE,
    binaries: [
      [findBinary('nats-server'), '/usr/local/bin/nats-server'],
      ['/usr/bin/wget', '/usr/bin/wget'],
      ['/bin/sh', '/bin/sh'],
    ],
    passwd: [],
    changes: [
      'ENV PATH=/usr/local/bin:/usr/bin:/bin',
      'EXPOSE 4222',
      'EXPOSE 6222',
      'EXPOSE 8222',
      'ENTRYPOINT ["nats-server"]',
      'CMD ["--help"]',
    ],
  };
}

function haproxyStandIn(): StandIn {
  return {
    image: HAPROXY_IMAGE,
    binaries: [
      [findBinary('haproxy'), '/usr/local/sbin/haproxy'],
      ['/bin/sh', '/bin/sh'],
    ],
    passwd: ['haproxy:x:99:99::/var/lib/haproxy:/bin/false'],
    changes: [
      'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      'USER haproxy',
      'STOPSIGNAL SIGUSR1',
      'CMD ["haproxy", "-f", "/usr/local/etc/haproxy/haproxy.cfg"]',
    ],
  };
}

function findBinary(name: string): string {
  for (const dir of ['/usr/sbin', '/usr/bin', '/usr/local/sbin', '/usr/local/bin'])
    if (existsSync(join(dir, name))) return join(dir, name);
  throw new Error(`${name} not found: run scripts/install-peers.sh`);
}

/** The shared libraries a binary (or a native addon) loads, as host paths. */
export function librariesOf(file: string): string[] {
  let out: string;
  try {
    out = execFileSync('ldd', [file], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  } catch {
    return []; // static (nats-server) or not an ELF file
  }
  const libs: string[] = [];
  for (const line of out.split('\n')) {
    const m = /=>\s+(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
    if (m?.[1]) libs.push(m[1]);
  }
  return libs;
}

/** Native addons of the project's dependencies: the node stand-in carries what they load. */
function nativeAddons(root: string): string[] {
  try {
    const out = execFileSync(
      'find',
      ['-L', join(root, 'node_modules'), '-name', '*.node', '-o', '-name', '*.so*'],
      {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
        maxBuffer: 64 * 1024 * 1024,
      },
    );
    return out.split('\n').filter(Boolean);
  } catch {
    return [];
  }
}

function hashOf(spec: StandIn, libs: string[]): string {
  const h = createHash('sha256');
  h.update(`${LAYOUT}\0${JSON.stringify(spec)}`);
  for (const [file] of spec.binaries) h.update(readFileSync(file));
  for (const lib of libs) h.update(lib);
  return h.digest('hex').slice(0, 16);
}

function build(spec: StandIn, extraLibs: string[]): void {
  const libs = [...new Set([...spec.binaries.map(([f]) => f), ...extraLibs].flatMap(librariesOf))].sort();
  const hash = hashOf(spec, libs);
  const label = podman(['image', 'inspect', '--format', '{{ index .Labels "mmgw.stand-in" }}', spec.image], {
    allowFailure: true,
  }).stdout.trim();
  if (label === hash) return;
  const root = mkdtempSync(join(tmpdir(), 'mmgw-stand-in-'));
  try {
    // Debian's merged /usr: /bin, /lib and /lib64 are links into /usr.
    for (const d of [
      'usr/bin',
      'usr/sbin',
      'usr/lib/x86_64-linux-gnu',
      'usr/lib64',
      'usr/local/bin',
      'usr/local/sbin',
      'etc/ssl/certs',
      'tmp',
      'home/node',
      'var/lib/haproxy',
      'usr/local/etc/haproxy',
    ])
      mkdirSync(join(root, d), { recursive: true });
    chmodSync(join(root, 'tmp'), 0o1777);
    for (const d of ['bin', 'sbin', 'lib', 'lib64']) symlinkSync(`usr/${d}`, join(root, d));
    const put = (from: string, to: string) => {
      mkdirSync(dirname(join(root, to)), { recursive: true });
      copyFileSync(from, join(root, to)); // follows links: the file itself, where ldd found it
      chmodSync(join(root, to), 0o755);
    };
    for (const [from, to] of spec.binaries) put(from, to);
    for (const lib of libs) put(lib, lib);
    for (const [from, to] of spec.trees ?? [])
      cpSync(from, join(root, to), { recursive: true, dereference: false });
    for (const [target, at] of spec.links ?? []) symlinkSync(target, join(root, at));
    copyFileSync('/etc/ssl/certs/ca-certificates.crt', join(root, 'etc/ssl/certs/ca-certificates.crt'));
    writeFileSync(join(root, 'etc/nsswitch.conf'), 'passwd: files\ngroup: files\nhosts: files dns\n');
    writeFileSync(join(root, 'etc/passwd'), ['root:x:0:0:root:/root:/bin/sh', ...spec.passwd, ''].join('\n'));
    writeFileSync(
      join(root, 'etc/group'),
      ['root:x:0:', ...spec.passwd.map((l) => l.split(':')).map((f) => `${f[0]}:x:${f[3]}:`), ''].join('\n'),
    );
    const tar = join(root, '..', `${hash}.tar`);
    execFileSync('tar', ['-C', root, '-cf', tar, '.']);
    try {
      podman([
        'import',
        ...spec.changes.flatMap((c) => ['--change', c]),
        '--change',
        `LABEL mmgw.stand-in=${hash}`,
        tar,
        spec.image,
      ]);
    } finally {
      rmSync(tar, { force: true });
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

/** Makes (or keeps) the three stand-ins. `root` is the checkout whose node_modules the node image must run. */
export function ensureStandIns(root: string): void {
  build(nodeStandIn(), nativeAddons(root));
  build(natsStandIn(), []);
  build(haproxyStandIn(), []);
}

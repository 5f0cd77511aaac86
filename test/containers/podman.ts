/**
 * podman and podman-compose as the container tests call them: Debian's podman
 * 4.3 as root, with test/containers/containers.conf (runc, open-file limits a
 * gateway needs, netavark for service names on compose networks), and the
 * mmgw image built once per content hash of what goes into it.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { processAlive } from '../../testing/index.ts';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CONTAINERS_CONF = fileURLToPath(new URL('containers.conf', import.meta.url));

export interface Run {
  status: number;
  stdout: string;
  stderr: string;
}

function env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { ...process.env, CONTAINERS_CONF, ...extra };
}

function run(
  cmd: string,
  args: string[],
  opts: { allowFailure?: boolean; env?: Record<string, string>; timeoutMs?: number },
): Run {
  const r = spawnSync(cmd, args, {
    cwd: ROOT,
    env: env(opts.env),
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
    timeout: opts.timeoutMs ?? 20 * 60_000,
  });
  const out = { status: r.status ?? -1, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
  if (out.status !== 0 && !opts.allowFailure)
    throw new Error(
      `${cmd} ${args.join(' ')} exited ${out.status}:\n${out.stderr.slice(-4000)}${out.stdout.slice(-2000)}`,
    );
  return out;
}

export function podman(args: string[], opts: { allowFailure?: boolean; timeoutMs?: number } = {}): Run {
  return run('podman', args, opts);
}

/**
 * podman without blocking the event loop: for a command whose container talks to
 * a server in this test process (a relay), which a spawnSync would starve. Resolves
 * with the exit status.
 */
export function podmanAsync(args: string[]): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn('podman', args, { cwd: ROOT, env: env(), stdio: 'ignore' });
    child.on('error', () => resolve(-1));
    child.on('close', (code) => resolve(code ?? -1));
  });
}

/** Why the container tests cannot run here, or undefined when they can. */
export function missingTools(): string | undefined {
  // haproxy: its binary makes the load balancer's stand-in image (stand-ins.ts).
  // netavark and aardvark-dns: containers.conf picks them (service names on compose networks).
  const missing = ['podman', 'podman-compose', 'runc', 'haproxy', 'netavark', 'aardvark-dns'].filter(
    (t) =>
      spawnSync('sh', ['-c', `command -v ${t} || [ -x /usr/sbin/${t} ] || [ -x /usr/lib/podman/${t} ]`])
        .status !== 0,
  );
  if (missing.length > 0)
    return `${missing.join(', ')} not installed: run scripts/install-peers.sh (Debian: apt-get install podman podman-compose runc netavark aardvark-dns haproxy)`;
  if (process.getuid?.() !== 0)
    return 'podman runs as root in these tests (rootless podman needs subuid ranges)';
  return undefined;
}

/** What `podman build` reads, by .dockerignore (its allow-list): the hash of it names the image. */
export function contextFiles(): string[] {
  const lines = readFileSync(join(ROOT, '.dockerignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  const allowed = lines.filter((l) => l.startsWith('!')).map((l) => l.slice(1).replace(/\/$/, ''));
  const denied = lines.filter((l) => !l.startsWith('!') && l !== '**');
  const deny = (path: string) =>
    denied.some((d) =>
      d.startsWith('**/')
        ? path.split('/').some((_, i, parts) => matches(parts.slice(i).join('/'), d.slice(3)))
        : matches(path, d),
    );
  const files: string[] = [];
  const walk = (path: string) => {
    const abs = join(ROOT, path);
    if (deny(path)) return;
    if (statSync(abs).isDirectory()) for (const name of readdirSync(abs)) walk(`${path}/${name}`);
    else files.push(path);
  };
  for (const a of allowed) walk(a);
  return files.sort();
}

/** A .dockerignore pattern: `*` within one path segment, a directory covers what is under it. */
function matches(path: string, pattern: string): boolean {
  const re = new RegExp(
    `^${pattern
      .split('*')
      .map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
      .join('[^/]*')}(/.*)?$`,
  );
  return re.test(path);
}

/** Names the image by what goes into it: the build context and the base image it starts from. */
export function contextHash(baseImage: string): string {
  const h = createHash('sha256');
  h.update(podman(['image', 'inspect', '--format', '{{.Id}}', baseImage]).stdout.trim());
  for (const f of [...contextFiles(), '.dockerignore', 'docker/Dockerfile']) {
    h.update(`${f}\0`);
    h.update(readFileSync(join(ROOT, f)));
  }
  return h.digest('hex').slice(0, 16);
}

/** Builds docker/Dockerfile as localhost/mmgw:<hash> unless that image exists; returns its name. */
export function ensureImage(baseImage: string): { image: string; built: boolean } {
  const image = `localhost/mmgw:${contextHash(baseImage)}`;
  if (podman(['image', 'exists', image], { allowFailure: true }).status === 0) return { image, built: false };
  const revision = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
  const build = (target: string[], tag: string) =>
    podman([
      'build',
      '--format',
      'docker',
      '--pull=never',
      '--build-arg',
      `REVISION=${revision}`,
      ...target,
      '-f',
      'docker/Dockerfile',
      '-t',
      tag,
      '.',
    ]);
  // The build stage keeps a name, so that pruning leaves its layers (npm ci) to the next build.
  build(['--target', 'build'], 'localhost/mmgw-build:cache');
  build([], image);
  for (const old of podman(['images', '--format', '{{.Repository}}:{{.Tag}}', 'localhost/mmgw']).stdout.split(
    '\n',
  ))
    if (old.trim() !== '' && old.trim() !== image) podman(['rmi', old.trim()], { allowFailure: true });
  podman(['image', 'prune', '-f'], { allowFailure: true });
  return { image, built: true };
}

/** podman-compose 1.0.3 for one project; `-p` because it ignores a top-level `name:`. */
export class ComposeProject {
  constructor(
    readonly name: string,
    readonly file: string,
    readonly vars: Record<string, string>,
  ) {}

  run(args: string[], opts: { allowFailure?: boolean } = {}): Run {
    // The nodes log (test/run.js silences the gateways the other tests start): a failure shows their logs.
    return run('podman-compose', ['-p', this.name, '-f', this.file, ...args], {
      env: { MMGW_LOG_LEVEL: 'info', ...this.vars },
      ...opts,
    });
  }

  up(): void {
    this.run(['up', '-d']);
  }

  /** The container of a service (podman-compose names them <project>_<service>_1). */
  container(service: string): string {
    return `${this.name}_${service}_1`;
  }

  /** Whether the image's HEALTHCHECK (or the compose file's) passes now. */
  healthy(service: string): boolean {
    return podman(['healthcheck', 'run', this.container(service)], { allowFailure: true }).status === 0;
  }

  exec(service: string, args: string[]): Run {
    return podman(['exec', this.container(service), ...args]);
  }

  /** The address of the host on the project's network (its gateway). */
  gateway(): string {
    const out = podman([
      'network',
      'inspect',
      `${this.name}_default`,
      '--format',
      '{{range .Subnets}}{{.Gateway}} {{end}}',
    ]).stdout;
    const gw = out.trim().split(/\s+/)[0];
    if (!gw) throw new Error(`no gateway on ${this.name}_default: ${out}`);
    return gw;
  }

  logs(service: string): string {
    const r = podman(['logs', '--tail', '60', this.container(service)], { allowFailure: true });
    return r.stdout + r.stderr;
  }

  /** Stops and removes the containers, then the network and volumes podman-compose 1.0.3 leaves. */
  down(): void {
    this.run(['down', '-t', '5'], { allowFailure: true });
    const label = `label=io.podman.compose.project=${this.name}`;
    for (const id of podman(['ps', '-aq', '--filter', label], { allowFailure: true })
      .stdout.split(/\s+/)
      .filter(Boolean))
      podman(['rm', '-f', id], { allowFailure: true });
    podman(['network', 'rm', '-f', `${this.name}_default`], { allowFailure: true });
    for (const v of podman(['volume', 'ls', '-q', '--filter', label], { allowFailure: true })
      .stdout.split(/\s+/)
      .filter(Boolean))
      podman(['volume', 'rm', '-f', v], { allowFailure: true });
  }
}

export function relativeToRoot(path: string): string {
  return relative(ROOT, path);
}

/**
 * Takes down projects named `<prefix><pid>` whose test process is gone (one
 * killed by the runner's timeout never ran its `after`).
 */
export function removeStaleProjects(prefix: string): void {
  const names = new Set(
    [
      ...podman(['ps', '-a', '--format', '{{index .Labels "io.podman.compose.project"}}'], {
        allowFailure: true,
      }).stdout.split('\n'),
      ...podman(['network', 'ls', '--format', '{{.Name}}'], { allowFailure: true })
        .stdout.split('\n')
        .map((n) => n.replace(/_default$/, '')),
    ].filter((n) => n.startsWith(prefix)),
  );
  for (const name of names) {
    const pid = Number(/(\d+)$/.exec(name)?.[1]);
    if (pid && processAlive(pid)) continue;
    new ComposeProject(name, 'docker/compose.yml', {}).down();
  }
}

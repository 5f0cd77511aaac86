/**
 * The first step of `npm test`: the Debian packages the tests start (nats-server,
 * Dovecot, Prosody, Chromium, podman, …; the list is scripts/install-peers.sh)
 * must be installed, so that `npm ci && npm test` is all a fresh Debian machine
 * needs.
 *
 *   node --import tsx scripts/ensure-peers.ts
 *
 * - everything present: nothing to do (a few milliseconds);
 * - something missing, running as root or with sudo that asks no password:
 *   runs scripts/install-peers.sh, which installs it;
 * - otherwise: stops at once (exit 1) with the one command to run.
 *
 * It also raises fs.inotify.max_user_instances to 8192 where it is lower (and
 * it may): with the default 128, Dovecot's IDLE silently falls back to 30 s
 * polling once several servers run, and mail tests time out.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const INSTALL_COMMAND = 'sudo bash scripts/install-peers.sh';
export const INOTIFY_INSTANCES = 8192;
const INOTIFY_FILE = '/proc/sys/fs/inotify/max_user_instances';

/** What the machine looks like, as far as the decision goes. */
export interface PeerFacts {
  /** Debian packages install-peers.sh would install. */
  missing: string[];
  /** Running as uid 0. */
  root: boolean;
  /** `sudo -n true` succeeds (sudo is there and asks no password). */
  sudo: boolean;
  /** The current fs.inotify.max_user_instances, undefined where it cannot be read. */
  inotifyInstances: number | undefined;
}

export type PeerStep =
  | { kind: 'install'; packages: string[]; sudo: boolean }
  | { kind: 'stop'; message: string }
  | { kind: 'raise-inotify'; sudo: boolean }
  | { kind: 'warn'; message: string };

/** The steps for these facts, in order; an empty list when all is in place. A `stop` is always alone. */
export function planPeers(f: PeerFacts): PeerStep[] {
  const allowed = f.root || f.sudo;
  if (f.missing.length > 0 && !allowed) {
    return [
      {
        kind: 'stop',
        message:
          `npm test starts real servers from Debian packages that are not installed: ${f.missing.join(' ')}.\n` +
          `Install them with this one command (it needs root), then run npm test again:\n\n  ${INSTALL_COMMAND}\n`,
      },
    ];
  }
  const steps: PeerStep[] = [];
  if (f.missing.length > 0) steps.push({ kind: 'install', packages: f.missing, sudo: !f.root });
  if (f.inotifyInstances !== undefined && f.inotifyInstances < INOTIFY_INSTANCES) {
    steps.push(
      allowed
        ? { kind: 'raise-inotify', sudo: !f.root }
        : {
            kind: 'warn',
            message:
              `fs.inotify.max_user_instances is ${f.inotifyInstances}: Dovecot's IDLE falls back to 30 s polling ` +
              `and mail tests may time out. Raise it with: sudo sysctl -w fs.inotify.max_user_instances=${INOTIFY_INSTANCES}`,
          },
    );
  }
  return steps;
}

const root = fileURLToPath(new URL('..', import.meta.url));
const installScript = join(root, 'scripts', 'install-peers.sh');

export function readFacts(): PeerFacts {
  const check = spawnSync('bash', [installScript, '--check'], { encoding: 'utf8' });
  if (check.status !== 0) throw new Error(`${installScript} --check failed: ${check.stderr}`);
  const missing = check.stdout.split(/\s+/).filter((w) => w !== '');
  const isRoot = process.getuid?.() === 0;
  // Only asked when it matters: sudo may log the attempt.
  const sudo = !isRoot && missing.length > 0 && spawnSync('sudo', ['-n', 'true']).status === 0;
  let inotifyInstances: number | undefined;
  try {
    inotifyInstances = Number(readFileSync(INOTIFY_FILE, 'utf8').trim());
  } catch {
    inotifyInstances = undefined;
  }
  return { missing, root: isRoot, sudo, inotifyInstances };
}

function run(command: string, args: string[], sudo: boolean): number {
  const [file, argv] = sudo ? ['sudo', ['-n', command, ...args]] : [command, args];
  return spawnSync(file, argv, { stdio: 'inherit' }).status ?? 1;
}

function main(): number {
  for (const step of planPeers(readFacts())) {
    switch (step.kind) {
      case 'stop':
        process.stderr.write(`\n${step.message}\n`);
        return 1;
      case 'install': {
        console.log(
          `ensure-peers: installing the Debian packages the tests need: ${step.packages.join(' ')}`,
        );
        if (run('bash', [installScript], step.sudo) !== 0) {
          process.stderr.write(`ensure-peers: the install failed; run it by hand: ${INSTALL_COMMAND}\n`);
          return 1;
        }
        const { missing } = readFacts();
        if (missing.length > 0) {
          process.stderr.write(`ensure-peers: still missing after the install: ${missing.join(' ')}\n`);
          return 1;
        }
        break;
      }
      case 'raise-inotify':
        if (run('sysctl', ['-qw', `fs.inotify.max_user_instances=${INOTIFY_INSTANCES}`], step.sudo) !== 0)
          process.stderr.write('ensure-peers: could not raise fs.inotify.max_user_instances\n');
        break;
      case 'warn':
        process.stderr.write(`ensure-peers: ${step.message}\n`);
        break;
    }
  }
  return 0;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) process.exit(main());

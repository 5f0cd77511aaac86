/**
 * Starts a private Dovecot (IMAP only) from a generated config in a temp
 * directory on a free loopback port. Never touches the system instance.
 *
 *   const dovecot = await startDovecot({ users: [{ user: 'alice@example.test', password: 'pw' }] });
 *   try { … } finally { await dovecot.stop(); }
 */
import { type ChildProcess, spawn } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ImapFlow } from 'imapflow';
import { waitForServer } from './server-probe.ts';

export const DOVECOT_BINARY = process.env.MMGW_DOVECOT_BIN ?? '/usr/sbin/dovecot';

export interface MailUser {
  user: string;
  password: string;
}

export interface DovecotOptions {
  users: MailUser[];
  /** Reuse an existing directory (restart with the same mailboxes); default: a new temp dir. */
  dir?: string;
  /** Reuse a port (restart on the same address); default: a free port. */
  port?: number;
  startTimeoutMs?: number;
  /**
   * Replaces the advertised IMAP capabilities (imap_capability), e.g. to play a
   * server without CONDSTORE/QRESYNC. Default: Dovecot's own list.
   */
  capabilities?: string[];
  /** Lines appended to the generated dovecot.conf (e.g. process limits for a benchmark). */
  extraConfig?: string[];
  /**
   * Calls the gateway's new-mail hook on every delivery/APPEND to INBOX, through
   * Dovecot's push_notification plugin and docs/dovecot/mmgw-push.lua, as an
   * operator would set it up (docs/dovecot/README.md).
   */
  pushHook?: { url: string; token: string };
}

/** The Lua script an operator installs for the push hook. */
export const PUSH_HOOK_SCRIPT = fileURLToPath(new URL('../../docs/dovecot/mmgw-push.lua', import.meta.url));

/** dovecot.conf lines that enable the mmgw push hook (the same as docs/dovecot/README.md shows). */
export function pushHookConfig(hook: { url: string; token: string }, script = PUSH_HOOK_SCRIPT): string[] {
  return [
    'mail_plugins = $mail_plugins mail_lua notify push_notification push_notification_lua',
    'plugin {',
    `  push_notification_driver = lua:file=${script}`,
    `  mmgw_push_url = ${hook.url}`,
    `  mmgw_push_token = ${hook.token}`,
    '}',
  ];
}

export interface DovecotServer {
  host: string;
  imapPort: number;
  dir: string;
  users: MailUser[];
  /** Stops the master process and its children. Idempotent. Keeps `dir` unless `removeDir`. */
  stop(opts?: { removeDir?: boolean }): Promise<void>;
  /** APPENDs a raw RFC 822 message into `folder` of `user` over IMAP; resolves with its UID. */
  appendMessage(user: string, folder: string, rfc822: string | Buffer, flags?: string[]): Promise<number>;
  /** A connected ImapFlow client logged in as `user` (caller logs out). */
  connect(user: string): Promise<ImapFlow>;
}

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // A test that crashes must not leave a Dovecot listening on the machine.
  process.on('exit', () => {
    for (const child of live) killGroup(child, 'SIGKILL');
  });
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Resolves once a connection to host:port reads a line starting with
 * `prefix`; fails at once with isDead()'s message when the server died.
 */
export async function waitForGreeting(
  host: string,
  port: number,
  prefix: string,
  timeoutMs: number,
  isDead: () => string | undefined = () => undefined,
): Promise<void> {
  const verdict = (received: string) => (received.includes('\n') ? received.startsWith(prefix) : undefined);
  await waitForServer(`a greeting from ${host}:${port}`, host, port, { verdict }, { timeoutMs, isDead });
}

function dovecotConfig(dir: string, port: number, capabilities?: string[], extra: string[] = []): string {
  const root = process.getuid?.() === 0;
  const me = userInfo();
  // Dovecot refuses to run mail processes as uid 0; as root we use nobody (65534),
  // otherwise everything runs as the current user.
  const mailUid = root ? 65534 : me.uid;
  const mailGid = root ? 65534 : me.gid;
  const lines = [
    `base_dir = ${dir}/run`,
    `state_dir = ${dir}/state`,
    `log_path = ${dir}/dovecot.log`,
    `info_log_path = ${dir}/dovecot.log`,
    'protocols = imap',
    'listen = 127.0.0.1',
    'ssl = no',
    'disable_plaintext_auth = no',
    'auth_mechanisms = plain login',
    'mail_plugins =',
    `mail_location = maildir:${dir}/mail/%u`,
    'first_valid_uid = 1',
    'first_valid_gid = 1',
    'mail_max_userip_connections = 200',
    'imap_idle_notify_interval = 1 mins',
    // Maildir indexes and fsync off: tests, not durability.
    'mail_fsync = never',
    'passdb {',
    '  driver = passwd-file',
    `  args = scheme=PLAIN username_format=%u ${dir}/passwd`,
    '}',
    'userdb {',
    '  driver = static',
    `  args = uid=${mailUid} gid=${mailGid} home=${dir}/home/%u`,
    '}',
    'service imap-login {',
    '  inet_listener imap {',
    '    address = 127.0.0.1',
    `    port = ${port}`,
    '  }',
    '  inet_listener imaps {',
    '    port = 0',
    '  }',
    '}',
    'service stats {',
    '  inet_listener http {',
    '    port = 0',
    '  }',
    '}',
    'namespace inbox {',
    '  inbox = yes',
    '  separator = /',
    '  mailbox Sent {',
    '    special_use = \\Sent',
    '    auto = subscribe',
    '  }',
    '  mailbox Drafts {',
    '    special_use = \\Drafts',
    '    auto = subscribe',
    '  }',
    '  mailbox Trash {',
    '    special_use = \\Trash',
    '    auto = subscribe',
    '  }',
    '}',
  ];
  if (capabilities) lines.push(`imap_capability = ${capabilities.join(' ')}`);
  if (!root) {
    lines.push(`default_internal_user = ${me.username}`, `default_login_user = ${me.username}`);
    lines.push(`default_internal_group = ${me.username}`);
  }
  lines.push(...extra);
  return lines.join('\n') + '\n';
}

export async function startDovecot(opts: DovecotOptions): Promise<DovecotServer> {
  if (!existsSync(DOVECOT_BINARY)) {
    throw new Error(
      `${DOVECOT_BINARY} not found: run scripts/install-peers.sh (Debian package dovecot-imapd)`,
    );
  }
  installExitHook();
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'mmgw-dovecot-'));
  // The auth process runs as the dovecot user and must read the passwd file.
  chmodSync(dir, 0o755);
  for (const sub of ['run', 'state', 'mail', 'home']) mkdirSync(join(dir, sub), { recursive: true });
  if (process.getuid?.() === 0) {
    chownSync(join(dir, 'mail'), 65534, 65534);
    chownSync(join(dir, 'home'), 65534, 65534);
  }
  writeFileSync(
    join(dir, 'passwd'),
    opts.users.map((u) => `${u.user}:{PLAIN}${u.password}::::::\n`).join(''),
  );
  chmodSync(join(dir, 'passwd'), 0o644);

  const users = opts.users;
  const startTimeoutMs = opts.startTimeoutMs ?? 20_000;
  let port = opts.port ?? (await freePort());
  const writeConfig = (hook: { url: string; token: string } | undefined) => {
    const extra = [...(hook ? pushHookConfig(hook) : []), ...(opts.extraConfig ?? [])];
    writeFileSync(join(dir, 'dovecot.conf'), dovecotConfig(dir, port, opts.capabilities, extra));
  };
  let child: ChildProcess | undefined;
  for (let attempt = 0; ; attempt++) {
    writeConfig(opts.pushHook);
    // Own process group, so that stop() can end the master and every imap/auth child with it.
    child = spawn(DOVECOT_BINARY, ['-F', '-c', join(dir, 'dovecot.conf')], {
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    live.add(child);
    let output = '';
    let exited: string | undefined;
    child.stdout?.on('data', (d) => (output += d));
    child.stderr?.on('data', (d) => (output += d));
    const c = child;
    child.on('exit', (code, sig) => {
      live.delete(c);
      exited = `dovecot exited (${code ?? sig}) during start: ${output.trim()} ${readLog(dir)}`;
    });
    try {
      await waitForGreeting('127.0.0.1', port, '* OK', startTimeoutMs, () => exited);
      break;
    } catch (err) {
      killGroup(c, 'SIGKILL');
      live.delete(c);
      // A port taken between probing and binding: try another (only when we chose it).
      if (attempt < 3 && opts.port === undefined && /in use/i.test(String(err))) {
        port = await freePort();
        continue;
      }
      throw err;
    }
  }

  const proc = child!;
  let stopped: Promise<void> | undefined;
  const stop = (stopOpts: { removeDir?: boolean } = {}): Promise<void> => {
    stopped ??= new Promise<void>((resolve) => {
      const finish = () => {
        // Children that outlive the master (an imap process mid-command) would keep
        // serving their connection: a restart test needs every connection cut.
        killGroup(proc, 'SIGKILL');
        live.delete(proc);
        resolve();
      };
      if (proc.exitCode !== null || proc.signalCode !== null) return finish();
      const timer = setTimeout(() => killGroup(proc, 'SIGKILL'), 5000);
      proc.once('exit', () => {
        clearTimeout(timer);
        finish();
      });
      killGroup(proc, 'SIGTERM');
    });
    return stopped.then(() => {
      if (stopOpts.removeDir) rmSync(dir, { recursive: true, force: true });
    });
  };

  const connect = async (user: string): Promise<ImapFlow> => {
    const u = users.find((x) => x.user === user);
    if (!u) throw new Error(`unknown test user ${user}`);
    const client = new ImapFlow({
      host: '127.0.0.1',
      port,
      secure: false,
      doSTARTTLS: false,
      auth: { user: u.user, pass: u.password },
      logger: false,
    });
    client.on('error', () => {});
    await client.connect();
    return client;
  };

  const appendMessage = async (user: string, folder: string, rfc822: string | Buffer, flags?: string[]) => {
    const client = await connect(user);
    try {
      const res = await client.append(folder, rfc822, flags ?? []);
      if (!res || typeof res !== 'object' || !res.uid) throw new Error(`APPEND to ${folder} gave no UID`);
      return res.uid;
    } finally {
      await client.logout().catch(() => client.close());
    }
  };

  return { host: '127.0.0.1', imapPort: port, dir, users, stop, appendMessage, connect };
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    try {
      child.kill(signal);
    } catch {}
  }
}

function readLog(dir: string): string {
  try {
    return readFileSync(join(dir, 'dovecot.log'), 'utf8').slice(-2000);
  } catch {
    return '';
  }
}

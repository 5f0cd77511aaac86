/**
 * Starts a private Prosody (Debian `prosody`, 0.12) from a generated config in
 * a temp directory on a free loopback port. Never touches the system instance.
 *
 *   const prosody = await startProsody({ domain: 'example.test', users: [{ user: 'alice', password: 'pw' }] });
 *   try { … } finally { await prosody.stop(); }
 *
 * Modules: roster, saslauth, disco, carbons (XEP-0280), mam (XEP-0313,
 * archiving on by default), smacks (XEP-0198), csi_simple (XEP-0352), ping.
 * s2s is off and plain (non-TLS) c2s is allowed: loopback tests only.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import {
  accessSync,
  constants,
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { client, type XmppClient } from '@xmpp/client';
import { eventually } from '../../testing/index.ts';
import { waitForServer } from './server-probe.ts';

export interface XmppUser {
  /** Local part only ("alice"), or a full bare JID on the server's domain. */
  user: string;
  password: string;
}

export interface RosterEntry {
  /** Bare JID of the contact. */
  jid: string;
  name?: string;
  groups?: string[];
  /** Default 'both' (mutual presence subscription). */
  subscription?: 'both' | 'to' | 'from' | 'none';
}

export interface ProsodyOptions {
  domain?: string;
  users?: XmppUser[];
  /**
   * Rosters written straight into Prosody's storage before it starts (fast
   * even for hundreds of contacts), keyed by local part. Mutual contacts need
   * an entry on both sides.
   */
  rosters?: Record<string, RosterEntry[]>;
  /** Reuse a directory (keeps accounts, rosters and archives); default a new temp dir. */
  dir?: string;
  /** Reuse a port; default a free one. */
  port?: number;
  startTimeoutMs?: number;
  /** Seconds a stream-management session survives a dropped connection (smacks_hibernation_time). Default 60. */
  hibernationSeconds?: number;
}

export interface ProsodyServer {
  host: string;
  c2sPort: number;
  domain: string;
  dir: string;
  pid: number;
  /** `user@domain` for a local part. */
  jid(user: string): string;
  /** Registers (or re-sets the password of) an account; works while running. */
  register(user: string, password: string): void;
  /** Stops the process (SIGTERM, then SIGKILL) and starts it again on the same port and data. */
  restart(): Promise<void>;
  /** Stops by pid. Idempotent. Removes `dir` unless it was given or `keepDir`. */
  stop(opts?: { keepDir?: boolean }): Promise<void>;
}

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // A test that crashes must not leave a Prosody listening on the machine.
  process.on('exit', () => {
    for (const child of live) {
      try {
        child.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
  });
}

function findBinary(name: string): string {
  const envName = name === 'prosody' ? 'MMGW_PROSODY_BIN' : 'MMGW_PROSODYCTL_BIN';
  const candidates = [
    process.env[envName],
    `/usr/bin/${name}`,
    `/usr/local/bin/${name}`,
    `/usr/sbin/${name}`,
  ];
  for (const path of candidates) {
    if (!path) continue;
    try {
      accessSync(path, constants.X_OK);
      return path;
    } catch {
      // next
    }
  }
  throw new Error(
    `${name} not found (looked in /usr/bin, /usr/local/bin, /usr/sbin). ` +
      `Install it with \`bash scripts/install-peers.sh\` (Debian package prosody), or set ${envName}.`,
  );
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => (port > 0 ? resolve(port) : reject(new Error('no free port'))));
    });
  });
}

/** A Lua string literal; escapes anything outside printable ASCII byte by byte. */
function lua(text: string): string {
  let out = '"';
  for (const byte of Buffer.from(text, 'utf8')) {
    const c = String.fromCharCode(byte);
    out +=
      byte >= 0x20 && byte < 0x7f && c !== '"' && c !== '\\' ? c : `\\${byte.toString().padStart(3, '0')}`;
  }
  return out + '"';
}

/** Prosody's datamanager file-name encoding: every non-alphanumeric byte as %xx. */
function storeName(text: string): string {
  return [...Buffer.from(text, 'utf8')]
    .map((b) =>
      /[A-Za-z0-9]/.test(String.fromCharCode(b))
        ? String.fromCharCode(b)
        : `%${b.toString(16).padStart(2, '0')}`,
    )
    .join('');
}

function rosterFile(entries: RosterEntry[]): string {
  const lines = ['return {', '\t[false] = { ["version"] = 1; };'];
  for (const e of entries) {
    const groups = (e.groups ?? []).map((g) => `[${lua(g)}] = true;`).join(' ');
    const name = e.name === undefined ? '' : ` ["name"] = ${lua(e.name)};`;
    lines.push(
      `\t[${lua(e.jid)}] = { ["subscription"] = ${lua(e.subscription ?? 'both')};${name} ["groups"] = { ${groups} }; };`,
    );
  }
  lines.push('};', '');
  return lines.join('\n');
}

function prosodyConfig(dir: string, domain: string, port: number, hibernation: number): string {
  const root = process.getuid?.() === 0;
  return [
    // As root, prosodyctl and prosody switch to the `prosody` user, which cannot
    // write into our temp dir; stay root for these throwaway test instances.
    ...(root ? ['prosody_user = "root"', 'prosody_group = "root"', 'run_as_root = true'] : []),
    `data_path = ${lua(join(dir, 'data'))}`,
    `pidfile = ${lua(join(dir, 'prosody.pid'))}`,
    `log = { info = ${lua(join(dir, 'prosody.log'))}; error = ${lua(join(dir, 'prosody.err'))}; }`,
    'daemonize = false',
    'interfaces = { "127.0.0.1" }',
    'c2s_interfaces = { "127.0.0.1" }',
    `c2s_ports = { ${port} }`,
    'c2s_direct_tls_ports = { }',
    'legacy_ssl_ports = { }',
    `certificates = ${lua(join(dir, 'certs'))}`,
    'authentication = "internal_hashed"',
    'storage = "internal"',
    'allow_registration = false',
    'allow_unencrypted_plain_auth = true',
    'c2s_require_encryption = false',
    'modules_enabled = { "roster", "saslauth", "disco", "carbons", "mam", "smacks", "csi_simple", "ping", "posix" }',
    'modules_disabled = { "s2s", "offline" }',
    'archive_expires_after = "1w"',
    'default_archive_policy = true',
    'max_archive_query_results = 250',
    `smacks_hibernation_time = ${hibernation}`,
    // Tests send bursts; Prosody's default c2s stanza-size limit stays, no rate limits.
    `VirtualHost ${lua(domain)}`,
    '',
  ].join('\n');
}

/** Resolves once host:port opens an XMPP stream; fails at once with isDead()'s message when Prosody died. */
async function waitForStream(
  host: string,
  port: number,
  domain: string,
  timeoutMs: number,
  isDead: () => string | undefined,
): Promise<void> {
  const send = `<?xml version='1.0'?><stream:stream to='${domain}' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`;
  const verdict = (received: string) => (received.includes('stream:features') ? true : undefined);
  await waitForServer(
    `Prosody on ${host}:${port} to open an XMPP stream`,
    host,
    port,
    { send, verdict },
    {
      timeoutMs,
      isDead,
    },
  );
}

/** Whether `port` can be bound on `host` (no process holds it any more). */
function portFree(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, host, () => srv.close(() => resolve(true)));
  });
}

function tail(file: string): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-15).join('\n');
  } catch {
    return '';
  }
}

function stopChild(child: ChildProcess, graceMs = 5000): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) {
      live.delete(child);
      resolve();
      return;
    }
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(timer);
      live.delete(child);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

export async function startProsody(opts: ProsodyOptions = {}): Promise<ProsodyServer> {
  const prosodyBin = findBinary('prosody');
  const prosodyctlBin = findBinary('prosodyctl');
  installExitHook();
  const domain = opts.domain ?? 'example.test';
  const host = '127.0.0.1';
  const ownDir = opts.dir === undefined;
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'mmgw-prosody-'));
  mkdirSync(join(dir, 'data'), { recursive: true });
  mkdirSync(join(dir, 'certs'), { recursive: true });
  const cfg = join(dir, 'prosody.cfg.lua');
  const startTimeoutMs = opts.startTimeoutMs ?? 20_000;
  const hibernation = opts.hibernationSeconds ?? 60;

  const localPart = (user: string) => {
    const at = user.indexOf('@');
    if (at < 0) return user;
    if (user.slice(at + 1) !== domain) throw new Error(`user ${user} is not on ${domain}`);
    return user.slice(0, at);
  };

  const register = (user: string, password: string) => {
    const r = spawnSync(prosodyctlBin, ['--config', cfg, 'register', localPart(user), domain, password], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    if (r.status !== 0) {
      throw new Error(`prosodyctl register ${user} failed (${r.status}): ${r.stderr || r.stdout}`);
    }
  };

  let port = opts.port ?? (await freePort());
  let child: ChildProcess | undefined;

  const launch = async (fixedPort: boolean): Promise<void> => {
    let lastError: unknown;
    // Prosody now and then exits right at start-up (seen as root): retry, on a fresh port unless pinned.
    for (let attempt = 0; attempt < 3; attempt++) {
      if (attempt > 0 && !fixedPort) port = await freePort();
      writeFileSync(cfg, prosodyConfig(dir, domain, port, hibernation));
      const proc = spawn(prosodyBin, ['--config', cfg, '-F'], { stdio: ['ignore', 'ignore', 'pipe'] });
      live.add(proc);
      let stderr = '';
      proc.stderr?.on('data', (d) => {
        if (stderr.length < 8192) stderr += d.toString();
      });
      let exited: string | undefined;
      proc.once('exit', (code, signal) => {
        exited = `prosody exited at start (code ${code}, signal ${signal}): ${stderr}\n${tail(join(dir, 'prosody.err'))}`;
        live.delete(proc);
      });
      proc.once('error', (err) => {
        exited = `prosody failed to spawn: ${err.message}`;
      });
      try {
        await waitForStream(host, port, domain, startTimeoutMs, () => exited);
        child = proc;
        return;
      } catch (err) {
        lastError = err;
        await stopChild(proc, 1000);
        // The same port again: only once the dead server's socket is gone.
        if (fixedPort) await eventually(`port ${port} free again`, () => portFree(host, port));
      }
    }
    throw new Error(
      `could not start Prosody: ${(lastError as Error)?.message}\n${tail(join(dir, 'prosody.log'))}`,
    );
  };

  // prosodyctl reads the same config (data_path), so it must exist before registering.
  writeFileSync(cfg, prosodyConfig(dir, domain, port, hibernation));
  for (const u of opts.users ?? []) register(u.user, u.password);
  for (const [user, entries] of Object.entries(opts.rosters ?? {})) {
    const rosterDir = join(dir, 'data', storeName(domain), 'roster');
    mkdirSync(rosterDir, { recursive: true });
    writeFileSync(join(rosterDir, `${storeName(localPart(user))}.dat`), rosterFile(entries));
  }
  await launch(opts.port !== undefined);

  let stopped = false;
  const server: ProsodyServer = {
    host,
    get c2sPort() {
      return port;
    },
    domain,
    dir,
    get pid() {
      return child?.pid ?? -1;
    },
    jid: (user) => `${localPart(user)}@${domain}`,
    register,
    async restart() {
      if (child) await stopChild(child);
      child = undefined;
      await launch(true);
    },
    async stop(stopOpts = {}) {
      if (stopped) return;
      stopped = true;
      if (child) await stopChild(child);
      child = undefined;
      if (ownDir && !stopOpts.keepDir) rmSync(dir, { recursive: true, force: true });
    },
  };
  return server;
}

/**
 * A plain @xmpp/client session straight to a server (no gateway), started:
 * the "other XMPP client" of tests and benchmarks. It does not reconnect by
 * itself, and its stream errors are the caller's business (swallowed here).
 */
export async function plainXmppClient(opts: {
  port: number;
  domain: string;
  user: string;
  password: string;
  resource: string;
  host?: string;
}): Promise<XmppClient> {
  const x = client({
    service: `xmpp://${opts.host ?? '127.0.0.1'}:${opts.port}`,
    domain: opts.domain,
    username: opts.user,
    password: opts.password,
    resource: opts.resource,
  });
  x.reconnect.stop();
  x.on('error', () => {});
  await x.start();
  return x;
}

/**
 * Many users with the password of `template` (already registered), made by
 * copying its account file: SCRAM salt and keys do not depend on the user
 * name, and prosodyctl takes a second per account.
 */
export function cloneAccounts(prosody: ProsodyServer, template: string, names: string[]): void {
  const dir = join(prosody.dir, 'data', prosody.domain.replace(/\./g, '%2e'), 'accounts');
  for (const n of names) copyFileSync(join(dir, `${template}.dat`), join(dir, `${n}.dat`));
}

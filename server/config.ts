import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { z } from 'zod';
import { GatewayError } from '../device-protocol/errors.ts';
import { ALARM_SEVERITIES } from './alarms/alarm.ts';
import { allowEntryProblem, allowListFrom } from './net/destination-policy.ts';
import { apnsSettings, fcmSettings, redactedPush, smsSettings } from './transport/push/settings.ts';

/**
 * The node's configuration: one validated object, built once at start from
 * defaults ← config file (JSON, `--config FILE` or MMGW_CONFIG) ← environment
 * (MMGW_*) ← command-line flags. Anything unknown or malformed stops the start
 * with a message that names the key and where the value came from, e.g.
 *   config: edge.heartbeatMs: expected a number ≥ 1000, got "abc" (from file mmgw.json)
 */

export const ROLES = ['all', 'edge', 'transport', 'transcoder', 'admin'] as const;
export type RoleName = (typeof ROLES)[number];
/** The roles a node actually runs ('all' expanded). */
export type Role = Exclude<RoleName, 'all'>;

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

const MAX_INT = Number.MAX_SAFE_INTEGER;

function whole(min: number, max = MAX_INT) {
  const range = max === MAX_INT ? `≥ ${min}` : `${min}–${max}`;
  const msg = `expected a number ${range}`;
  return z
    .number({ error: msg })
    .int({ error: `expected a whole number ${range}` })
    .min(min, { error: msg })
    .max(max, { error: msg });
}

const port = () => whole(0, 65535);

/** Node ids appear inside bus subjects (`mmgw.transport.<id>.req`): one NATS token, no dots. */
const nodeId = z.string({ error: 'expected a string' }).regex(/^[A-Za-z0-9_-]{1,64}$/, {
  error: 'expected 1-64 letters, digits, _ or - (it is a bus subject token)',
});

const busUrl = z.string({ error: 'expected a string' }).refine(
  (s) =>
    s === 'inproc' ||
    s
      .split(',')
      .map((x) => x.trim())
      .every((x) => /^(nats|tls):\/\/[^\s,]+$/.test(x)),
  { error: 'expected "inproc" or nats://host:port (several separated by commas)' },
);

/**
 * Limits of the edge (server/edge/limits.ts EdgeLimitOptions, where the
 * defaults and their reasons are); unset ones keep the edge's defaults.
 */
const edgeLimits = z
  .object({
    maxFrameBytes: whole(64).optional(),
    maxFramesPerSecond: whole(1).optional(),
    burstFrames: whole(1).optional(),
    maxQueuedBytes: whole(1024).optional(),
    maxReplayFrames: whole(1).optional(),
    maxReplayBytes: whole(1024).optional(),
    /** Hello/Resume must be answered this long after a connection opens. Default 10000. */
    helloTimeoutMs: whole(100).optional(),
    /** Connections without a session per source address (IPv6: per /64). Default 256. */
    maxUnauthenticatedPerAddress: whole(1).optional(),
    /** Connections without a session in all. Default a quarter of the open-file limit. */
    maxUnauthenticated: whole(1).optional(),
    /** Frames a second from one source address before its connections have sessions. Default 2000. */
    preAuthFramesPerSecondPerAddress: whole(1).optional(),
    /** Refused Hello/Resume per (source address, IMEI) per minute. Default 10. */
    authFailuresPerDevicePerMinute: whole(1).optional(),
    /** Refused Hello/Resume per source address per minute (a carrier NAT holds thousands of devices). Default 1000. */
    authFailuresPerAddressPerMinute: whole(1).optional(),
  })
  .strict();

/** An outbound destination the operator opens (server/net/destination-policy.ts). */
const destination = z.string({ error: 'expected a string' }).superRefine((entry, ctx) => {
  const problem = allowEntryProblem(entry);
  if (problem !== undefined)
    ctx.addIssue({ code: 'custom', message: `expected a CIDR or host name: ${problem}` });
});

/** The transport role's outbound connections and accounts (server/transport/kit/outbound.ts); unset keys keep its defaults. */
const transportSettings = z
  .object({
    /**
     * Destinations opened besides public addresses on the service ports: CIDRs,
     * addresses, host names or `*.example.com`, any port. MMGW_ALLOW_DESTINATIONS
     * (comma-separated) adds to this list.
     */
    allowDestinations: z.array(destination, { error: 'expected a list of CIDRs or host names' }).optional(),
    /** Ports allowed for every service besides its own (mail 143, 993, 25, 465, 587; XMPP 5222, 5223). */
    allowPorts: z.array(whole(1, 65535), { error: 'expected a list of port numbers' }).optional(),
    /** Accounts one device may add itself, per service (mail.account.add). */
    maxAccountsPerDevice: whole(1, 1000).optional(),
    /** How long connecting to a mail server (TCP, TLS, greeting) may take. */
    mailConnectTimeoutMs: whole(1000, 120_000).optional(),
  })
  .strict();

/** Wake-ups of devices without a session (server/transport/push/, issue 14); every key optional. */
const pushSettings = z
  .object({
    /**
     * The VAPID key pair (RFC 8292, base64url: P-256 public key 65 bytes, private 32). Absent: generated
     * on the first start into `<data>/push/vapid.json` (0600). Every transport of a cluster needs the same.
     */
    vapid: z
      .object({
        publicKey: z.string({ error: 'expected a string' }).regex(/^[A-Za-z0-9_-]{87}$/, {
          error: 'expected 65 bytes in base64url (87 characters)',
        }),
        privateKey: z.string({ error: 'expected a string' }).regex(/^[A-Za-z0-9_-]{43}$/, {
          error: 'expected 32 bytes in base64url (43 characters)',
        }),
      })
      .strict()
      .optional(),
    /** The VAPID `sub` claim: how a push service reaches the operator (mailto: or https:). */
    subject: z
      .string({ error: 'expected a string' })
      .regex(/^(mailto:|https:\/\/)\S+$/, { error: 'expected a mailto: or https: URL' })
      .optional(),
    /** At most one wake-up per device per this many ms (what comes meanwhile is counted). Default 30000. */
    intervalMs: whole(100, 3_600_000).optional(),
    /** Wake-up channels one device may register. Default 5. */
    maxPerDevice: whole(1, 100).optional(),
    /** A channel neither registered again nor used for this many days is removed; 0: never. Default 60. */
    expireDays: whole(0, 3650).optional(),
    /** FCM wake-ups (server/transport/push/settings.ts); absent: kind fcm is not enabled. */
    fcm: fcmSettings.optional(),
    /** APNs wake-ups (the same file); absent: kind apns is not enabled. */
    apns: apnsSettings.optional(),
    /** SMS wake-ups over SMPP, the last resort (the same file); absent: kind sms is not enabled. */
    sms: smsSettings.optional(),
  })
  .strict();

/** Alarms and where they go (server/alarms); every key optional. */
const alarmSettings = z
  .object({
    /** The history: lmdb on one node, the JetStream stream MMGW_ALARMS on a NATS bus. */
    history: z
      .object({
        /** Copies of the stream (NATS servers holding it). Default 3. */
        replicas: whole(1, 5).optional(),
        /** Records kept; the oldest go first. Default 10000. */
        maxRecords: whole(100, 10_000_000).optional(),
      })
      .strict()
      .optional(),
    /** No admin node in the membership for this long: admin_gone (raised by any node). Default 10000. */
    adminGoneAfterMs: whole(1000).optional(),
    /** backend_failing: failed backend requests within windowMs, per device and per preset. */
    backendFailing: z
      .object({
        /** Default 300000 (5 minutes). */
        windowMs: whole(1000).optional(),
        /** Default 3. */
        perDevice: whole(1).optional(),
        /** Default 20. */
        perPreset: whole(1).optional(),
      })
      .strict()
      .optional(),
    /** HTTP POST of each alarm record as JSON, signed (HMAC-SHA256 with `secret`). */
    webhook: z
      .object({
        url: z.url({ protocol: /^https?$/, error: 'expected an http:// or https:// URL' }),
        /** MMGW_ALARM_WEBHOOK_SECRET sets it too. */
        secret: z
          .string({ error: 'expected a string' })
          .min(16, { error: 'expected at least 16 characters' }),
        timeoutMs: whole(100, 120_000).optional(),
      })
      .strict()
      .optional(),
    /** Each alarm record as a mail through an SMTP relay. */
    email: z
      .object({
        host: z.string({ error: 'expected a host name or address' }).min(1),
        port: whole(1, 65535).default(587),
        /** TLS from the first byte (465); otherwise STARTTLS when the relay offers it. */
        secure: z.boolean({ error: 'expected true or false' }).optional(),
        user: z.string({ error: 'expected a string' }).min(1).optional(),
        /** MMGW_ALARM_SMTP_PASSWORD sets it too. */
        password: z.string({ error: 'expected a string' }).optional(),
        from: z.string({ error: 'expected an address' }).min(3),
        to: z.array(z.string().min(3), { error: 'expected a list of addresses' }).min(1),
        allowInvalidCert: z.boolean({ error: 'expected true or false' }).optional(),
        timeoutMs: whole(100, 120_000).optional(),
      })
      .strict()
      .optional(),
    /**
     * Each alarm record as an SMS to these numbers, over an SMPP link of the `push.sms` settings
     * (server/alarms/channels/sms.ts); needs push.sms.
     */
    sms: z
      .object({
        to: z
          .array(
            z.string().regex(/^\+[1-9][0-9]{6,14}$/, { error: 'expected an international number, +4917…' }),
            { error: 'expected a list of numbers' },
          )
          .min(1)
          .max(20),
        minSeverity: z.enum(ALARM_SEVERITIES, { error: 'expected info, warning or critical' }).optional(),
        /** Alarms sent per hour and node, each to every number (default 10); the rest are counted. */
        maxPerHour: whole(1, 1000).optional(),
        /** The link is unbound after this long without an alarm SMS (default 60000). */
        idleMs: whole(1000).optional(),
      })
      .strict()
      .optional(),
    /** Retries of a channel: attempts per alarm, first delay, longest delay. */
    delivery: z
      .object({
        maxAttempts: whole(1, 100).optional(),
        baseDelayMs: whole(10).optional(),
        maxDelayMs: whole(10).optional(),
      })
      .strict()
      .optional(),
    /**
     * Destinations the channels may reach besides public addresses on their ports (webhook 443,
     * SMTP 25/465/587); transport.allowDestinations and MMGW_ALLOW_DESTINATIONS count too.
     */
    allowDestinations: z.array(destination, { error: 'expected a list of CIDRs or host names' }).optional(),
  })
  .strict();

export type AlarmSettings = z.infer<typeof alarmSettings>;

const filePath = (what: string) =>
  z.string({ error: `expected the path of ${what}` }).min(1, { error: `expected the path of ${what}` });

/**
 * TLS of the device port (wss://, https:// long-poll) and the admin port (HTTPS), TLS 1.2+ only
 * (server/net/serving-tls.ts). The files are read again on SIGHUP. The portable engine serves it:
 * the pinned uWebSockets.js build has no TLS.
 */
const tlsSettings = z
  .object({
    /** PEM certificate chain, the server's own first. */
    cert: filePath('a PEM certificate chain (--tls-cert)'),
    /** PEM private key of that certificate. */
    key: filePath('a PEM private key (--tls-key)'),
    /** PEM CA certificate(s): /metrics and /readyz then answer only clients with a certificate it signed. */
    opsClientCa: filePath('a PEM CA certificate').optional(),
  })
  .strict();

export const ConfigSchema = z
  .object({
    /** Data directory (registry, keys, node-local stores). */
    data: z.string({ error: 'expected a path' }).min(1, { error: 'expected a path' }).default('./data'),
    /** Address the device endpoint binds to. */
    host: z.string({ error: 'expected a host or address' }).min(1).default('0.0.0.0'),
    /**
     * Address the ops/admin endpoint binds to: loopback unless told otherwise, so that a first start
     * does not put the admin API on every interface (a cluster's nodes set it for scrapes and the UI).
     */
    adminHost: z.string({ error: 'expected a host or address' }).min(1).default('127.0.0.1'),
    /** Device endpoint (WebSocket and long-poll); 0 picks a free port. */
    port: port().default(8080),
    /** Ops and admin endpoint (/healthz, /readyz, /metrics, /api/v1); 0 picks a free port. */
    adminPort: port().default(8081),
    roles: z
      .array(z.enum(ROLES, { error: `expected one of ${ROLES.join(', ')}` }), {
        error: 'expected a list of roles',
      })
      .min(1, { error: 'expected at least one role' })
      .default(['all']),
    /** "inproc" (one process) or NATS server URL(s). */
    bus: busUrl.default('inproc'),
    /** Defaults to the host name plus a random suffix. */
    nodeId: nodeId.optional(),
    /** uws, or portable when `tls` is set (the uWebSockets.js build has no TLS). */
    engine: z.enum(['uws', 'portable'], { error: 'expected "uws" or "portable"' }).default('uws'),
    /** Absent: plain HTTP and WebSocket on both ports. */
    tls: tlsSettings.optional(),
    /** HMAC key for device session tokens; else `<data>/keys/jwt.key` (generated on first start). */
    jwtSecret: z
      .string({ error: 'expected a string' })
      .min(32, { error: 'expected at least 32 characters' })
      .optional(),
    /**
     * Shared secret of the new-mail hook (POST /hooks/mail/new on the admin port,
     * `Authorization: Bearer <token>`), called by the mail server's push plugin
     * (docs/dovecot/README.md). Absent: no hook; IMAP IDLE alone drives mail.new.
     */
    mailPushToken: z
      .string({ error: 'expected a string' })
      .min(16, { error: 'expected at least 16 characters' })
      .optional(),
    /**
     * Key of the account secrets at rest (32 bytes, base64; server/transport/credentials.ts); else
     * `<data>/keys/credentials.key` (generated on first use). The admin and every transport need the same.
     */
    credentialsKey: z.string({ error: 'expected a string' }).min(1).optional(),
    /**
     * Run the transport and the transcoder as child processes that a crash restarts alone, while the
     * edge keeps every device session (`mmgw start`'s default); false: every role in this one process.
     */
    supervise: z.boolean({ error: 'expected true or false' }).default(true),
    /** When every role is up, write {pid, nodeId, devicePort, adminPort} here (tests and supervisors use it). */
    readyFile: z.string({ error: 'expected a path' }).min(1).optional(),
    log: z
      .object({
        level: z.enum(LOG_LEVELS, { error: `expected one of ${LOG_LEVELS.join(', ')}` }).default('info'),
      })
      .strict()
      .default({ level: 'info' }),
    edge: z
      .object({
        /** Edge worker processes sharing the device port (each holds at most ~20k sockets here). */
        workers: whole(1, 64).default(1),
        heartbeatMs: whole(1000).default(30000),
        resumeWindowMs: whole(1000).default(120000),
        /** Frame compression on WebSocket carriers for devices that ask (device-protocol/SPEC.md §4.4). */
        compression: z.boolean({ error: 'expected true or false' }).default(true),
        limits: edgeLimits.default({}),
      })
      .strict()
      .default({ workers: 1, heartbeatMs: 30000, resumeWindowMs: 120000, compression: true, limits: {} }),
    /** Retention of per-device log records and usage counters (admin role, `<data>/records`); absent: the defaults below. */
    records: z
      .object({
        maxAgeDays: whole(1, 3650).default(30),
        /** Log records beyond this many bytes go, oldest first. */
        maxBytes: whole(1024 * 1024).default(1024 ** 3),
        /** One device keeps at most this many log records, so a busy one cannot fill the disk. */
        maxPerDevice: whole(100).default(20000),
        usageMaxAgeDays: whole(1, 3650).default(400),
      })
      .strict()
      .optional(),
    /** Chat accounts (transport role); absent: the defaults. */
    im: z
      .object({
        /** How long a gone device's XMPP sessions stay before they are closed (default 10 minutes). */
        lingerMs: whole(1).optional(),
      })
      .strict()
      .optional(),
    /** Admin REST API; absent: the defaults below. */
    admin: z
      .object({
        /** Lifetime of an admin login token. */
        tokenTtlSeconds: whole(60, 7 * 86400).default(12 * 3600),
        /** Failed logins of one user name per 15 minutes before 429. */
        loginFailuresPerUser: whole(1).default(5),
        /** Failed logins from one client address per 15 minutes before 429. */
        loginFailuresPerAddress: whole(1).default(30),
        /** Rows a device import may have (API; the CLI has --max-rows); more is 413 api.too_large. */
        importMaxRows: whole(1, 100_000_000).default(1_000_000),
        /** The system monitor's last hour (GET /nodes/history): a sample every this many ms. */
        monitorSampleMs: whole(1000, 300_000).default(15_000),
        /** With firstAdminPassword: the admin user created on a first start, when none exists yet. */
        firstAdminName: z.string({ error: 'expected a string' }).min(1).optional(),
        firstAdminPassword: z.string({ error: 'expected a string' }).min(1).optional(),
      })
      .strict()
      .optional(),
    /** The transport role's outbound policy and per-device limits; absent: the defaults of transport/kit/outbound.ts. */
    transport: transportSettings.optional(),
    /** Wake-ups through the devices' push channels (Web Push, FCM, APNs); absent: Web Push with a generated VAPID key. */
    push: pushSettings.optional(),
    /**
     * Copies of each shared-state KV bucket in cluster mode (server/store/shared/cluster.ts): 3 on a
     * 3-server NATS cluster. Absent: 3 when `bus` lists at least 3 servers, else 1.
     */
    stateReplicas: whole(1, 5).optional(),
    /** Alarms: thresholds, history, channels (webhook, e-mail, SMS); absent: the defaults, no channel. */
    alarms: alarmSettings.optional(),
  })
  .strict();

export type Config = z.infer<typeof ConfigSchema>;

/** Flags of `mmgw start`, already parsed; undefined means "not given". */
export interface ConfigFlags {
  data?: string;
  port?: string | number;
  adminPort?: string | number;
  roles?: string[];
  bus?: string;
  nodeId?: string;
  host?: string;
  adminHost?: string;
  engine?: string;
  edgeWorkers?: string | number;
  logLevel?: string;
  readyFile?: string;
  supervise?: boolean;
  tlsCert?: string;
  tlsKey?: string;
  opsClientCa?: string;
}

export interface LoadConfigOptions {
  /** Config file (JSON). Falls back to env MMGW_CONFIG. */
  file?: string;
  env?: Record<string, string | undefined>;
  flags?: ConfigFlags;
  /** Relative paths (data, readyFile) are resolved against this. Default process.cwd(). */
  cwd?: string;
}

export class ConfigError extends GatewayError {
  /** One line per problem, each starting with "config: <key>". */
  readonly problems: string[];

  constructor(problems: string[]) {
    super('config.invalid', problems.join('\n'));
    this.problems = problems;
  }
}

type Raw = Record<string, unknown>;
type Sources = Map<string, string>;

/** Environment variable → config path. */
export const ENV_KEYS: Record<string, string> = {
  MMGW_DATA: 'data',
  MMGW_PORT: 'port',
  MMGW_ADMIN_PORT: 'adminPort',
  MMGW_ROLE: 'roles',
  MMGW_BUS: 'bus',
  MMGW_NODE_ID: 'nodeId',
  MMGW_HOST: 'host',
  MMGW_ADMIN_HOST: 'adminHost',
  MMGW_ENGINE: 'engine',
  MMGW_EDGE_WORKERS: 'edge.workers',
  MMGW_LOG_LEVEL: 'log.level',
  MMGW_JWT_SECRET: 'jwtSecret',
  MMGW_MAIL_PUSH_TOKEN: 'mailPushToken',
  MMGW_CREDENTIALS_KEY: 'credentialsKey',
  MMGW_SUPERVISE: 'supervise',
  MMGW_IM_LINGER_MS: 'im.lingerMs',
  MMGW_PUSH_INTERVAL_MS: 'push.intervalMs',
  MMGW_PUSH_EXPIRE_DAYS: 'push.expireDays',
  MMGW_ADMIN_NAME: 'admin.firstAdminName',
  MMGW_ADMIN_PASSWORD: 'admin.firstAdminPassword',
  MMGW_STATE_REPLICAS: 'stateReplicas',
  MMGW_ALARM_WEBHOOK_SECRET: 'alarms.webhook.secret',
  MMGW_ALARM_SMTP_PASSWORD: 'alarms.email.password',
  MMGW_TLS_CERT: 'tls.cert',
  MMGW_TLS_KEY: 'tls.key',
  MMGW_OPS_CLIENT_CA: 'tls.opsClientCa',
};

const FLAG_KEYS: Record<keyof ConfigFlags, [path: string, flag: string]> = {
  data: ['data', '--data'],
  port: ['port', '--port'],
  adminPort: ['adminPort', '--admin-port'],
  roles: ['roles', '--role'],
  bus: ['bus', '--bus'],
  nodeId: ['nodeId', '--node-id'],
  host: ['host', '--host'],
  adminHost: ['adminHost', '--admin-host'],
  engine: ['engine', '--engine'],
  edgeWorkers: ['edge.workers', '--edge-workers'],
  logLevel: ['log.level', '--log-level'],
  readyFile: ['readyFile', '--ready-file'],
  supervise: ['supervise', '--no-supervise'],
  tlsCert: ['tls.cert', '--tls-cert'],
  tlsKey: ['tls.key', '--tls-key'],
  opsClientCa: ['tls.opsClientCa', '--ops-client-ca'],
};

const NUMERIC_PATHS = new Set([
  'port',
  'adminPort',
  'edge.workers',
  'im.lingerMs',
  'push.intervalMs',
  'push.expireDays',
  'stateReplicas',
]);
const BOOLEAN_PATHS = new Set(['supervise']);

/** Strings from the environment and flags: digits become numbers; anything else stays as given (and fails validation). */
function fromText(path: string, value: unknown): unknown {
  if (path === 'roles') {
    const list = Array.isArray(value) ? value : [value];
    return list.flatMap((v) =>
      String(v)
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s.length > 0),
    );
  }
  if (NUMERIC_PATHS.has(path) && typeof value === 'string' && /^\d+$/.test(value.trim()))
    return Number(value);
  if (BOOLEAN_PATHS.has(path) && typeof value === 'string') {
    const word = value.trim().toLowerCase();
    if (['true', '1', 'yes'].includes(word)) return true;
    if (['false', '0', 'no'].includes(word)) return false;
  }
  return value;
}

function setPath(target: Raw, path: string, value: unknown): void {
  const keys = path.split('.');
  let node = target;
  for (const key of keys.slice(0, -1)) {
    const next = node[key];
    if (next === null || typeof next !== 'object' || Array.isArray(next)) node[key] = {};
    node = node[key] as Raw;
  }
  // split() yields at least one key.
  node[keys[keys.length - 1]!] = value;
}

function getPath(source: unknown, path: (string | number | symbol)[]): unknown {
  let node = source;
  for (const key of path) {
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Record<string | number | symbol, unknown>)[key];
  }
  return node;
}

/** Records the source of every leaf of a file's object. */
function noteSources(value: unknown, prefix: string, label: string, sources: Sources): void {
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value)) noteSources(v, prefix ? `${prefix}.${k}` : k, label, sources);
  } else if (prefix) sources.set(prefix, label);
}

function readConfigFile(file: string, cwd: string): Raw {
  const path = resolve(cwd, file);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError([`config: cannot read config file ${path}: ${(err as Error).message}`]);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new ConfigError([`config: ${path} is not valid JSON: ${(err as Error).message}`]);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new ConfigError([`config: ${path} must hold a JSON object`]);
  }
  return parsed as Raw;
}

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  const text = JSON.stringify(value);
  return text === undefined ? String(value) : text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/**
 * Builds the configuration. Throws ConfigError (code config.invalid) listing
 * every problem, one line each.
 */
export function loadConfig(options: LoadConfigOptions = {}): Config {
  const env = options.env ?? process.env;
  const cwd = options.cwd ?? process.cwd();
  const raw: Raw = {};
  const sources: Sources = new Map();

  const file = options.file ?? (env.MMGW_CONFIG || undefined);
  if (file !== undefined) {
    const fromFile = readConfigFile(file, cwd);
    Object.assign(raw, structuredClone(fromFile));
    noteSources(fromFile, '', `file ${file}`, sources);
  }
  // Added to the file's list, not replacing it: the environment opens loopback peers for a test run.
  const allowEnv = env.MMGW_ALLOW_DESTINATIONS;
  if (allowEnv !== undefined && allowEnv.trim() !== '') {
    const path = 'transport.allowDestinations';
    const configured = getPath(raw, path.split('.'));
    if (configured === undefined || Array.isArray(configured)) {
      setPath(raw, path, allowListFrom(configured as string[] | undefined, allowEnv));
      const fromFile = sources.get(path);
      sources.set(
        path,
        fromFile ? `${fromFile} and env MMGW_ALLOW_DESTINATIONS` : 'env MMGW_ALLOW_DESTINATIONS',
      );
    }
  }
  for (const [name, path] of Object.entries(ENV_KEYS)) {
    const value = env[name];
    if (value === undefined || value === '') continue;
    setPath(raw, path, fromText(path, value));
    sources.set(path, `env ${name}`);
  }
  for (const [key, [path, flag]] of Object.entries(FLAG_KEYS)) {
    const value = options.flags?.[key as keyof ConfigFlags];
    if (value === undefined || (Array.isArray(value) && value.length === 0)) continue;
    setPath(raw, path, fromText(path, value));
    sources.set(path, `flag ${flag}`);
  }

  const result = ConfigSchema.safeParse(raw);
  if (!result.success) {
    const problems = result.error.issues.flatMap((issue) => {
      const where = issue.path.map(String).join('.');
      if (issue.code === 'unrecognized_keys') {
        return issue.keys.map((k) => {
          const key = where ? `${where}.${k}` : k;
          const from = sources.get(key);
          return `config: ${key}: unknown key${from ? ` (from ${from})` : ''}`;
        });
      }
      // Roles fail per element (roles.1); name the list and the value.
      const key = where || '(root)';
      let from: string | undefined;
      for (let p = issue.path.map(String); p.length > 0 && from === undefined; p = p.slice(0, -1)) {
        from = sources.get(p.join('.'));
      }
      const got = describe(getPath(raw, issue.path));
      return [`config: ${key}: ${issue.message}, got ${got}${from ? ` (from ${from})` : ''}`];
    });
    throw new ConfigError(problems);
  }
  const config = result.data;
  if (config.alarms?.sms && !config.push?.sms) {
    throw new ConfigError(['config: alarms.sms: needs push.sms, the SMPP link it sends over']);
  }
  config.data = resolve(cwd, config.data);
  if (config.readyFile !== undefined) config.readyFile = resolve(cwd, config.readyFile);
  if (config.tls !== undefined) withTls(config, config.tls, cwd, sources.get('engine'));
  return config;
}

/**
 * Paths resolved; the engine that serves TLS. The pinned uWebSockets.js build has none, so the
 * portable engine is the default with TLS and uws asked for is refused.
 */
function withTls(config: Config, tls: NonNullable<Config['tls']>, cwd: string, engineFrom?: string): void {
  tls.cert = resolve(cwd, tls.cert);
  tls.key = resolve(cwd, tls.key);
  if (tls.opsClientCa !== undefined) tls.opsClientCa = resolve(cwd, tls.opsClientCa);
  if (engineFrom === undefined) config.engine = 'portable';
  else if (config.engine === 'uws') {
    throw new ConfigError([
      `config: engine: the uws engine cannot serve TLS (its uWebSockets.js build has none); use "portable", the default with tls, got "uws" (from ${engineFrom})`,
    ]);
  }
}

/** The roles a node runs: 'all' is every role. */
export function expandRoles(roles: readonly RoleName[]): Role[] {
  const all: Role[] = ['admin', 'transport', 'transcoder', 'edge'];
  if (roles.includes('all')) return all;
  return all.filter((r) => roles.includes(r));
}

/** The configuration as it may be logged: secrets replaced. */
export function redactedConfig(config: Config): Record<string, unknown> {
  return {
    ...config,
    ...(config.jwtSecret === undefined ? {} : { jwtSecret: '[redacted]' }),
    ...(config.mailPushToken === undefined ? {} : { mailPushToken: '[redacted]' }),
    ...(config.credentialsKey === undefined ? {} : { credentialsKey: '[redacted]' }),
    ...(config.admin?.firstAdminPassword === undefined
      ? {}
      : { admin: { ...config.admin, firstAdminPassword: '[redacted]' } }),
    ...(config.alarms === undefined ? {} : { alarms: redactedAlarms(config.alarms) }),
    ...(config.push === undefined ? {} : { push: redactedPush(config.push) }),
  };
}

function redactedAlarms(alarms: AlarmSettings): AlarmSettings {
  return {
    ...alarms,
    ...(alarms.webhook ? { webhook: { ...alarms.webhook, secret: '[redacted]' } } : {}),
    ...(alarms.email?.password === undefined ? {} : { email: { ...alarms.email, password: '[redacted]' } }),
  };
}

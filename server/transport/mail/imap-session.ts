/**
 * One IMAP connection per mail account on this transport node (ImapAccountSession),
 * pooled by account id and kept for a linger after its last use so that short
 * mobile drop-outs, or a burst of requests, do not cost a new login each time.
 *
 * Commands of one account run one after another (a promise chain): IMAP has a
 * single selected mailbox per connection, and serialising keeps a sync's
 * SELECT + FETCH sequence from interleaving with another request's SELECT.
 * A command that fails because the connection died (server restart, idle
 * drop) is retried once on a fresh connection when it is idempotent.
 */
import { orAfter, within } from '../kit/deadline.ts';
import { ImapFlow } from 'imapflow';
import type { Logger } from 'pino';
import { GatewayError } from '../../../device-protocol/errors.ts';
import type { DestinationPolicy, PinnedDestination } from '../../net/destination-policy.ts';
import type { MailAccount, MailServerSettings } from './account-store.ts';
import { mailDestination, tlsServerName } from './destination.ts';
import { offloadLargeFetchRows } from './fetch-offload.ts';
import { imapCommandError, mailConnectError } from './mail-errors.ts';
import type { MimePool } from './mime-pool.ts';

export type ImapAccountState = 'idle' | 'connecting' | 'online' | 'auth_failed' | 'retrying';

/** Bytes exchanged with a mail server for one operation (the admin issue aggregates these). */
export interface MailUsageRecord {
  deviceId: string;
  account: string;
  /** 'login', 'sync', 'body', 'attachment', 'folders', 'flag', 'move', 'delete', 'send', 'send.copy-to-sent', … */
  op: string;
  /** Bytes read from the IMAP/SMTP server. */
  bytesIn: number;
  /** Bytes written to the IMAP/SMTP server. */
  bytesOut: number;
  ok: boolean;
  /** The GatewayError code when !ok. */
  code?: string;
  /** The service-profile preset the account's servers came from: failures also count against it (alarms). */
  preset?: string;
}

export type UsageSink = (record: MailUsageRecord) => void;

export interface ImapConnectOptions {
  /** The node's outbound policy: every connection goes to an address it checked. */
  policy: DestinationPolicy;
  /** Already checked by the caller (mail.account.add checks IMAP and SMTP before connecting either). */
  destination?: PinnedDestination;
  /** The MIME workers: FETCH rows over OFFLOAD_ROW_BYTES are parsed there (fetch-offload.ts). */
  mime?: MimePool;
  connectTimeoutMs?: number;
  /** Set false to behave like a server without QRESYNC (tests the fallback path). */
  qresync?: boolean;
  /** Enter IDLE after this many ms without commands (watchers); default: never IDLE. */
  autoIdleDelayMs?: number;
  logger?: Logger;
}

const CONNECTION_LOST = new Set([
  'NoConnection',
  'EConnectionClosed',
  'ECONNRESET',
  'EPIPE',
  'StateLogout',
  'ETIMEOUT',
]);

/**
 * Longest response line (literals apart) taken from an IMAP server. A FETCH
 * row of a 10,000-part message is a few MB; a line past this is no mail
 * server's (a 10 MB greeting): the connection fails instead of buffering it.
 */
export const IMAP_MAX_LINE_BYTES = 16 * 1024 * 1024;

/**
 * Opens and logs in one ImapFlow client; errors come out as mail.* GatewayErrors.
 * Connects to the address the outbound policy checked, the host name kept for TLS.
 */
export async function connectImap(settings: MailServerSettings, opts: ImapConnectOptions): Promise<ImapFlow> {
  const timeout = opts.connectTimeoutMs ?? 15_000;
  const target = opts.destination ?? (await mailDestination(opts.policy, 'imap', settings, opts.logger));
  const servername = tlsServerName(target);
  const client = new ImapFlow({
    host: target.address,
    port: target.port,
    // SNI and the certificate check on the name the handset gave (an address gets neither SNI nor a name check).
    ...(servername === undefined ? {} : { servername }),
    secure: settings.tls === 'implicit',
    doSTARTTLS: settings.tls === 'starttls' ? true : settings.tls === 'none' ? false : undefined,
    auth: { user: settings.user, pass: settings.password },
    tls: {
      rejectUnauthorized: !settings.allowInvalidCert,
      ...(servername === undefined ? {} : { servername }),
    },
    maxLineLength: IMAP_MAX_LINE_BYTES,
    logger: false,
    qresync: opts.qresync ?? true,
    disableAutoIdle: opts.autoIdleDelayMs === undefined,
    ...(opts.autoIdleDelayMs === undefined
      ? {}
      : { autoIdleDelay: opts.autoIdleDelayMs, maxIdleTime: 5 * 60_000 }),
    connectionTimeout: timeout,
    greetingTimeout: timeout,
    socketTimeout: 5 * 60_000,
    clientInfo: { name: 'mmgw' },
  });
  if (opts.mime) offloadLargeFetchRows(client, opts.mime, opts.logger);
  // Socket errors after login surface on the next command; an unhandled 'error' would crash the node.
  client.on('error', (err: Error) =>
    opts.logger?.debug({ err: { message: err.message } }, 'imap connection error'),
  );
  // imapflow's timeouts cover connect and greeting; a server that then never settles the login
  // (an answer under a tag the client never used, a challenge for every line) would hold it until
  // the socket timeout. The whole login gets twice the connect timeout.
  try {
    await within(
      client.connect(),
      2 * timeout,
      () =>
        new GatewayError('mail.unreachable', 'The IMAP server did not answer in time.', {
          retryable: true,
          retryAfterMs: 5000,
          field: 'imap.host',
        }),
    );
  } catch (err) {
    client.close();
    throw mailConnectError(err, 'imap', opts.logger);
  }
  return client;
}

export class ImapAccountSession {
  state: ImapAccountState = 'idle';
  #client: ImapFlow | undefined;
  #connecting: Promise<ImapFlow> | undefined;
  #queue: Promise<unknown> = Promise.resolve();
  #closed = false;
  readonly account: MailAccount;
  readonly #opts: ImapConnectOptions;
  readonly #onState: (state: ImapAccountState) => void;
  readonly #usage: UsageSink | undefined;

  constructor(
    account: MailAccount,
    opts: ImapConnectOptions,
    onState: (s: ImapAccountState) => void = () => {},
    usage?: UsageSink,
  ) {
    this.account = account;
    this.#opts = opts;
    this.#onState = onState;
    this.#usage = usage;
  }

  #record(op: string, client: ImapFlow | undefined, ok: boolean, code?: string): void {
    if (!this.#usage) return;
    const { sent, received } = client ? client.stats(true) : { sent: 0, received: 0 };
    this.#usage({
      deviceId: this.account.deviceId,
      account: this.account.id,
      op,
      bytesIn: received,
      bytesOut: sent,
      ok,
      ...(code === undefined ? {} : { code }),
      ...(this.account.preset === undefined ? {} : { preset: this.account.preset }),
    });
  }

  /**
   * Runs `fn` with a logged-in client, after any command already queued for this account.
   * `idempotent` commands are retried once on a fresh connection when the old one died.
   */
  run<T>(
    what: string,
    fn: (client: ImapFlow) => Promise<T>,
    opts: { idempotent?: boolean } = {},
  ): Promise<T> {
    const idempotent = opts.idempotent ?? true;
    const task = this.#queue.then(async () => {
      for (let attempt = 0; ; attempt++) {
        const client = await this.#ensureClient();
        client.stats(true);
        try {
          const result = await fn(client);
          this.#record(what, client, true);
          return result;
        } catch (err) {
          this.#record(what, client, false, err instanceof GatewayError ? err.code : undefined);
          if (err instanceof GatewayError) throw err;
          const code = (err as { code?: string }).code ?? '';
          const lost = CONNECTION_LOST.has(code) || !client.usable;
          if (lost) this.#drop(client);
          if (lost && idempotent && attempt === 0 && !this.#closed) {
            this.#setState('retrying');
            continue;
          }
          throw imapCommandError(err, what, this.#opts.logger);
        }
      }
    });
    this.#queue = task.catch(() => {});
    return task;
  }

  async close(): Promise<void> {
    this.#closed = true;
    const client = this.#client;
    this.#client = undefined;
    if (client) {
      await orAfter(
        client.logout().catch(() => {}),
        2000,
        undefined,
      );
      client.close();
    }
    this.#setState('idle');
  }

  async #ensureClient(): Promise<ImapFlow> {
    if (this.#closed)
      throw new GatewayError('mail.unreachable', 'mail session is closed', { retryable: true });
    if (this.#client?.usable) return this.#client;
    if (this.#client) this.#drop(this.#client);
    this.#connecting ??= (async () => {
      this.#setState(this.state === 'idle' ? 'connecting' : 'retrying');
      try {
        const client = await connectImap(this.account.imap, this.#opts);
        client.on('close', () => {
          if (this.#client === client) {
            this.#client = undefined;
            if (!this.#closed) this.#setState('retrying');
          }
        });
        this.#client = client;
        this.#record('login', client, true);
        this.#setState('online');
        return client;
      } catch (err) {
        const code = (err as GatewayError).code;
        this.#record('login', undefined, false, code);
        this.#setState(code === 'mail.auth_failed' ? 'auth_failed' : 'retrying');
        throw err;
      } finally {
        this.#connecting = undefined;
      }
    })();
    return this.#connecting;
  }

  #drop(client: ImapFlow): void {
    if (this.#client === client) this.#client = undefined;
    try {
      client.close();
    } catch {}
  }

  #setState(state: ImapAccountState): void {
    if (this.state === state) return;
    this.state = state;
    this.#onState(state);
  }
}

export interface ImapSessionPoolOptions extends ImapConnectOptions {
  /** How long a session stays open after its last use. Default 5 minutes. */
  lingerMs?: number;
  /** Told of every account state change (connecting, online, auth_failed, retrying). */
  onState?: (account: MailAccount, state: ImapAccountState) => void;
  /** Told the IMAP bytes of every login and operation. */
  usage?: UsageSink;
}

/** The node's ImapAccountSessions, keyed by account id. */
export class ImapSessionPool {
  readonly #sessions = new Map<
    string,
    { session: ImapAccountSession; timer?: NodeJS.Timeout; busy: number }
  >();
  readonly #opts: ImapSessionPoolOptions;

  constructor(opts: ImapSessionPoolOptions) {
    this.#opts = opts;
  }

  get size(): number {
    return this.#sessions.size;
  }

  /** Runs `fn` on the account's session, opening it when needed and restarting its linger after. */
  async use<T>(
    account: MailAccount,
    what: string,
    fn: (client: ImapFlow) => Promise<T>,
    opts?: { idempotent?: boolean },
  ): Promise<T> {
    let entry = this.#sessions.get(account.id);
    if (!entry) {
      const session = new ImapAccountSession(
        account,
        this.#opts,
        (s) => this.#opts.onState?.(account, s),
        this.#opts.usage,
      );
      entry = { session, busy: 0 };
      this.#sessions.set(account.id, entry);
    }
    const e = entry;
    if (e.timer) clearTimeout(e.timer);
    e.timer = undefined;
    e.busy++;
    try {
      return await e.session.run(what, fn, opts);
    } finally {
      e.busy--;
      if (e.busy === 0 && this.#sessions.get(account.id) === e) {
        e.timer = setTimeout(() => void this.drop(account.id), this.#opts.lingerMs ?? 5 * 60_000);
        e.timer.unref();
      }
    }
  }

  state(accountId: string): ImapAccountState {
    return this.#sessions.get(accountId)?.session.state ?? 'idle';
  }

  async drop(accountId: string): Promise<void> {
    const entry = this.#sessions.get(accountId);
    if (!entry) return;
    this.#sessions.delete(accountId);
    if (entry.timer) clearTimeout(entry.timer);
    await entry.session.close();
  }

  async closeAll(): Promise<void> {
    await Promise.all([...this.#sessions.keys()].map((id) => this.drop(id)));
  }
}

/**
 * Selects `folder` for the duration of `fn`. When it was already selected, a NOOP
 * first lets the server tell this session what other clients did meanwhile:
 * Dovecot does not show a message appended elsewhere to a UID FETCH/STORE of
 * this session until the session's view is synced.
 */
export async function withFolder<T>(client: ImapFlow, folder: string, fn: () => Promise<T>): Promise<T> {
  if (client.mailbox && client.mailbox.path === folder) await client.noop();
  const lock = await client.getMailboxLock(folder);
  try {
    return await fn();
  } finally {
    lock.release();
  }
}

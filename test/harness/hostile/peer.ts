/**
 * The common part of the hostile peers (see README.md beside this file): a
 * loopback TCP server whose connections are driven by a protocol script
 * (imap.ts, smtp.ts, xmpp.ts), with what each client sent recorded, and a
 * stop() that destroys every socket whatever state the script left it in.
 *
 * The server is half-open-capable (allowHalfOpen): a client's FIN never makes
 * the peer close its side, which is what lets a peer keep talking while the
 * client tears down (#11 item 1). Connections start paused, so a peer that
 * must never read (half-open) does not.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { createSecureContext, type SecureContext, TLSSocket } from 'node:tls';
import { throwAwayCertificate } from './cert.ts';

export type HostileProtocol = 'imap' | 'smtp' | 'xmpp';

export const HOSTILE_BEHAVIOURS = [
  'half-open',
  'slow-drip',
  'huge',
  'garbage',
  'wrong-sasl',
  'banner-with-secrets',
  'tls-stall',
  'reset-midway',
] as const;
export type HostileBehaviour = (typeof HOSTILE_BEHAVIOURS)[number];

/** Options every protocol understands; each knob only matters to the behaviour it names. */
export interface HostileOptions {
  /** Listen on ::1 instead of 127.0.0.1. */
  ipv6?: boolean;
  /** Default a free port. */
  port?: number;
  /**
   * 'implicit': every connection is TLS from its first byte (imaps, smtps,
   * xmpps) with a throw-away self-signed certificate, and the behaviour runs
   * inside it; for tls-stall the handshake itself stalls. Ignored by
   * half-open, which never reads. Default 'none'.
   */
  tls?: 'none' | 'implicit';
  /** The secret marker; default `SECRET-MARKER-<16 hex>`. */
  marker?: string;
  /** Recorded bytes per connection and direction; default 1 MiB (the rest is counted, not kept). */
  recordLimitBytes?: number;
  /** half-open: read (and record) what the client sends, still answering nothing. Default false. */
  read?: boolean;
  /** slow-drip (IMAP, SMTP): pause between two bytes; default 500 ms. */
  dripIntervalMs?: number;
  /** slow-drip (XMPP): pause between two whitespace keepalives; default 20 ms. */
  keepaliveIntervalMs?: number;
  /** huge: size of the huge line, literal or stanza; default 10 MiB. */
  hugeBytes?: number;
  /** huge: bytes per write; default 64 KiB. */
  hugeChunkBytes?: number;
  /**
   * huge: pause between two writes; default 0 (as fast as the client reads)
   * when the huge part opens the session, 100 ms when it comes at teardown
   * (so 10 MiB take ~16 s and outlast a library's own close timeout).
   */
  hugeChunkIntervalMs?: number;
  /** garbage: random bytes sent; default 4 KiB. */
  garbageBytes?: number;
  /** garbage: start with a protocol-looking prefix (greeting / stream header); default false. */
  garbagePrefix?: boolean;
  /** garbage: derive the bytes from this seed (same seed, same bytes); default fresh random bytes. */
  garbageSeed?: string;
  /**
   * wrong-sasl: pause before each SASL answer; default 50 ms, so a client
   * that loops gets 20 rounds a second instead of thousands.
   */
  saslReplyDelayMs?: number;
  /** banner-with-secrets: whose banner; default per protocol (README). */
  banner?: 'ssh' | 'http' | 'native';
  /**
   * tls-stall: bytes of a real server handshake (ServerHello…) forwarded
   * before the stall; default 0 (the client's ClientHello is never answered).
   */
  stallAfterBytes?: number;
}

/** What one client connection did, as the peer saw it. */
export interface HostileSession {
  readonly id: number;
  /** Date.now() at accept. */
  readonly openedAt: number;
  /** When the client half-closed (FIN); only seen while the peer reads. */
  readonly clientEndedAt: number | undefined;
  /** When the connection was gone (client hang-up, reset, or the peer's own close or stop). */
  readonly closedAt: number | undefined;
  /** When the peer reset the connection (RST), for reset-midway. */
  readonly resetAt: number | undefined;
  /**
   * Client bytes that crossed the wire unencrypted: all of them on a plain
   * connection, those before STARTTLS, and a stalled handshake's ClientHello.
   */
  readonly clearBytes: Buffer;
  /** Everything the client sent as application data (decrypted inside TLS). */
  readonly received: Buffer;
  /** Bytes the client sent, recorded or not. */
  readonly bytesReceived: number;
  /** Bytes the peer wrote (before TLS framing). */
  readonly bytesSent: number;
  /** 'stalled': a handshake began and was never answered (tls-stall). */
  readonly tls: 'none' | 'established' | 'stalled';
}

export interface HostilePeer {
  readonly protocol: HostileProtocol;
  readonly behaviour: HostileBehaviour;
  readonly host: string;
  readonly port: number;
  /** The secret marker (on the wire only for banner-with-secrets). */
  readonly marker: string;
  /** Connections accepted so far. */
  connections(): number;
  /** Connections still open. */
  openConnections(): number;
  /** Bytes the peer wrote, all connections. */
  bytesSent(): number;
  /** Bytes clients sent, all connections. */
  bytesReceived(): number;
  /** One record per accepted connection, oldest first. */
  sessions(): readonly HostileSession[];
  /** Every client's application bytes, in connection order, as latin1 text. */
  receivedText(): string;
  /**
   * Whether `secret` crossed the wire unencrypted: as is, in an IMAP quoted
   * string, or inside any base64 token (SASL PLAIN / LOGIN / XMPP <auth>).
   */
  sentInClear(secret: string): boolean;
  /** Destroys every connection and closes the server; idempotent. */
  stop(): Promise<void>;
}

/** What a protocol script gets for each accepted connection. */
export type ConnectionScript = (conn: PeerConnection) => void | Promise<void>;

const DEFAULT_RECORD_LIMIT = 1024 * 1024;
/**
 * Lets the client read a partial response before the RST arrives. Without
 * the pause the RST can discard unread data; and a client whose event loop
 * finds both pending in one poll is told EOF, not ECONNRESET (libuv reads
 * the data, then takes the hang-up for an end). Busy enough, it still can.
 */
const RESET_DELAY_MS = 100;

class Recording {
  readonly #chunks: Buffer[] = [];
  #kept = 0;
  total = 0;
  constructor(readonly limit: number) {}
  add(chunk: Buffer): void {
    this.total += chunk.length;
    const room = this.limit - this.#kept;
    if (room <= 0) return;
    const part = chunk.length <= room ? chunk : chunk.subarray(0, room);
    this.#chunks.push(Buffer.from(part));
    this.#kept += part.length;
  }
  bytes(): Buffer {
    return Buffer.concat(this.#chunks);
  }
}

class SessionRecord implements HostileSession {
  readonly openedAt = Date.now();
  clientEndedAt: number | undefined;
  closedAt: number | undefined;
  resetAt: number | undefined;
  bytesSent = 0;
  tls: HostileSession['tls'] = 'none';
  readonly clear: Recording;
  readonly app: Recording;
  constructor(
    readonly id: number,
    limit: number,
  ) {
    this.clear = new Recording(limit);
    this.app = new Recording(limit);
  }
  get clearBytes(): Buffer {
    return this.clear.bytes();
  }
  get received(): Buffer {
    return this.app.bytes();
  }
  get bytesReceived(): number {
    // A stalled handshake's bytes are on the wire but never application data.
    return Math.max(this.app.total, this.clear.total);
  }
}

/**
 * One accepted connection, as the protocol scripts drive it. Every wait it
 * offers (sleep, drained) ends when the connection closes, so a script's loop
 * needs no cancellation of its own: it checks `closed`.
 */
export class PeerConnection {
  readonly raw: Socket;
  readonly session: SessionRecord;
  readonly marker: string;
  readonly opts: HostileOptions;
  closed = false;
  #app: Socket;
  #secureContext: () => Promise<SecureContext>;
  #readingRaw = false;
  #readingApp = false;
  #stalled = false;
  #stallSink: Duplex | undefined;
  #listeners: ((chunk: Buffer) => void)[] = [];
  #endListeners: (() => void)[] = [];
  #timers = new Set<NodeJS.Timeout>();
  #wakers = new Set<() => void>();

  constructor(
    raw: Socket,
    session: SessionRecord,
    marker: string,
    opts: HostileOptions,
    secureContext: () => Promise<SecureContext>,
  ) {
    this.raw = raw;
    this.#app = raw;
    this.session = session;
    this.marker = marker;
    this.opts = opts;
    this.#secureContext = secureContext;
    // Each drip byte and each partial answer goes out on its own, not held back by Nagle.
    raw.setNoDelay(true);
    raw.on('error', () => {});
    raw.on('close', () => this.#onClosed());
    raw.on('end', () => this.#onEnd());
  }

  /** Starts reading (and recording) without a listener of its own. */
  read(): void {
    if (this.closed) return;
    if (this.#app === this.raw) {
      if (this.#readingRaw) return;
      this.#readingRaw = true;
      this.raw.on('data', (chunk: Buffer) => this.#onRawData(chunk));
      this.raw.resume();
    } else if (!this.#readingApp) {
      this.#readingApp = true;
      this.#app.on('data', (chunk: Buffer) => {
        this.session.app.add(chunk);
        this.#dispatch(chunk);
      });
    }
  }

  /** Application bytes from the client (decrypted inside TLS). */
  onData(listener: (chunk: Buffer) => void): void {
    this.#listeners.push(listener);
    this.read();
  }

  /** The client half-closed its side (FIN). */
  onEnd(listener: () => void): void {
    this.#endListeners.push(listener);
    this.read();
  }

  write(data: string | Buffer): boolean {
    if (this.closed || this.#app.destroyed || this.#app.writableEnded) return false;
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    this.session.bytesSent += bytes.length;
    return this.#app.write(bytes);
  }

  /** Writes, then (once it is flushed and the client had a moment to read it) resets: RST, not FIN. */
  writeThenReset(data: string | Buffer): void {
    if (this.closed) return;
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    this.session.bytesSent += bytes.length;
    this.#app.write(bytes, () => this.after(RESET_DELAY_MS, () => this.reset()));
  }

  /** Ends the peer's side after what was written (FIN). */
  end(data?: string): void {
    if (this.closed) return;
    if (data !== undefined) this.write(data);
    this.#app.end();
  }

  reset(): void {
    if (this.closed) return;
    this.session.resetAt = Date.now();
    try {
      this.raw.resetAndDestroy();
    } catch {
      this.raw.destroy();
    }
    this.#app.destroy();
  }

  destroy(): void {
    this.#app.destroy();
    this.raw.destroy();
    this.#onClosed();
  }

  /** Resolves after `ms`, or at once when the connection closes. */
  sleep(ms: number): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.#timers.delete(timer);
        this.#wakers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.#timers.add(timer);
      this.#wakers.add(wake);
    });
  }

  after(ms: number, fn: () => void): void {
    if (this.closed) return;
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      if (!this.closed) fn();
    }, ms);
    this.#timers.add(timer);
  }

  every(ms: number, fn: () => void): void {
    if (this.closed) return;
    this.#timers.add(setInterval(() => !this.closed && fn(), ms));
  }

  /** Resolves when the socket can take more, or the connection closed. */
  drained(): Promise<void> {
    if (this.closed || !this.#app.writableNeedDrain) return Promise.resolve();
    return new Promise((resolve) => {
      const wake = () => {
        this.#app.off('drain', wake);
        this.#wakers.delete(wake);
        resolve();
      };
      this.#app.once('drain', wake);
      this.#wakers.add(wake);
    });
  }

  /** Writes `text` one byte at a time, `intervalMs` apart. */
  async drip(text: string, intervalMs: number): Promise<void> {
    for (const byte of Buffer.from(text, 'utf8')) {
      if (this.closed) return;
      this.write(Buffer.of(byte));
      await this.sleep(intervalMs);
    }
  }

  /**
   * Streams `head`, `size` bytes of filler, then `tail`, in chunks that wait
   * for the client to read (backpressure) and `intervalMs` apart. Stops only
   * when done or the connection is gone: a client's LOGOUT, QUIT or FIN
   * does not stop it.
   */
  async stream(head: string, size: number, tail: string, chunkBytes: number, intervalMs: number) {
    this.write(head);
    const chunk = filler(Math.max(1, chunkBytes));
    let left = size;
    while (left > 0 && !this.closed) {
      const n = Math.min(chunk.length, left);
      if (!this.write(n === chunk.length ? chunk : chunk.subarray(0, n))) await this.drained();
      left -= n;
      if (intervalMs > 0) await this.sleep(intervalMs);
    }
    this.write(tail);
  }

  /** Completes a TLS handshake as server; false if the client went away or failed it. */
  async acceptTls(): Promise<boolean> {
    const secureContext = await this.#secureContext();
    if (this.closed) return false;
    const tls = new TLSSocket(this.raw, { isServer: true, secureContext });
    // A net.Socket option the TLSSocket passes on: the client's close_notify/FIN must not close our side.
    tls.allowHalfOpen = true;
    tls.on('error', () => {});
    tls.on('close', () => this.#onClosed());
    tls.on('end', () => this.#onEnd());
    this.#app = tls;
    this.#readingApp = false;
    const ok = await new Promise<boolean>((resolve) => {
      tls.once('secure', () => resolve(true));
      tls.once('close', () => resolve(false));
    });
    if (ok) this.session.tls = 'established';
    if (ok && this.#listeners.length > 0) this.read();
    return ok;
  }

  /**
   * From now on the client's bytes are a TLS handshake that never completes:
   * recorded, never answered (or answered with only the first `afterBytes`
   * bytes of a real server handshake), never closed by the peer.
   */
  async stallTls(afterBytes = 0): Promise<void> {
    this.#stalled = true;
    this.session.tls = 'stalled';
    if (afterBytes > 0) {
      const secureContext = await this.#secureContext();
      let forwarded = 0;
      // The real handshake runs against this in-memory pipe; only its first bytes reach the client.
      const sink = new Duplex({
        read() {},
        write: (chunk: Buffer, _enc, cb) => {
          const room = afterBytes - forwarded;
          if (room > 0) {
            const part = chunk.subarray(0, room);
            forwarded += part.length;
            this.session.bytesSent += part.length;
            if (!this.closed) this.raw.write(part);
          }
          cb();
        },
      });
      const tls = new TLSSocket(sink as unknown as Socket, { isServer: true, secureContext });
      tls.on('error', () => {});
      this.#stallSink = sink;
    }
    this.read();
  }

  #onRawData(chunk: Buffer): void {
    this.session.clear.add(chunk);
    if (this.#stalled) {
      this.#stallSink?.push(chunk);
      return;
    }
    this.session.app.add(chunk);
    this.#dispatch(chunk);
  }

  #dispatch(chunk: Buffer): void {
    for (const listener of this.#listeners) {
      if (this.closed) return;
      listener(chunk);
    }
  }

  #onEnd(): void {
    if (this.session.clientEndedAt !== undefined) return;
    this.session.clientEndedAt = Date.now();
    for (const listener of this.#endListeners) listener();
  }

  #onClosed(): void {
    if (this.closed) return;
    this.closed = true;
    this.session.closedAt = Date.now();
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    for (const wake of [...this.#wakers]) wake();
    this.#stallSink?.destroy();
    this.#app.destroy();
    this.raw.destroy();
  }
}

/** Printable ASCII without CR, LF, `<`, `&`, `)`, `]` or `"`: valid inside an IMAP literal, an SMTP line and XML text. */
function filler(size: number): Buffer {
  const pattern = Buffer.from('hostile-filler-0123456789-abcdefghijklmnopqrstuvwxyz-', 'latin1');
  const out = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i += pattern.length) pattern.copy(out, i, 0, Math.min(pattern.length, size - i));
  return out;
}

function randomMarker(): string {
  return `SECRET-MARKER-${randomBytes(8).toString('hex')}`;
}

/** Random bytes as a base64 string, for challenges that mean nothing. */
export function randomBase64(bytes = 24): string {
  return randomBytes(bytes).toString('base64');
}

/** The `SSH-2.0-…` identification line a real sshd sends first, with the marker in its comment. */
export function sshBanner(marker: string): string {
  return `SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3 ${marker}\r\n`;
}

/** An HTTP server's answer to whatever arrived, with the marker in a cookie and in the body. */
export function httpResponse(marker: string): string {
  const body = `<html><body>internal dashboard ${marker}</body></html>\n`;
  return [
    'HTTP/1.1 200 OK',
    'Server: nginx/1.22.1',
    'Content-Type: text/html',
    `Set-Cookie: session=${marker}; Path=/; HttpOnly`,
    `Content-Length: ${Buffer.byteLength(body)}`,
    'Connection: close',
    '',
    body,
  ].join('\r\n');
}

/**
 * The banner behaviours that are not protocol-specific: an SSH server speaks
 * first and drops a client that is not SSH; an HTTP server waits for a
 * request and answers anything. Returns false for 'native' (the script's own).
 */
export function foreignBanner(conn: PeerConnection, banner: 'ssh' | 'http' | 'native'): boolean {
  if (banner === 'ssh') {
    conn.write(sshBanner(conn.marker));
    let answered = false;
    conn.onData(() => {
      if (answered) return;
      answered = true;
      conn.end('Invalid SSH identification string.\r\n');
    });
    return true;
  }
  if (banner === 'http') {
    let answered = false;
    conn.onData(() => {
      if (answered) return;
      answered = true;
      conn.end(httpResponse(conn.marker));
    });
    return true;
  }
  return false;
}

/** Sends garbageBytes random bytes, optionally after `prefix`, then stays open and silent. */
export function sendGarbage(conn: PeerConnection, prefix: string | undefined): void {
  conn.read();
  if (prefix !== undefined) conn.write(prefix);
  conn.write(garbage(conn.opts.garbageBytes ?? 4096, conn.opts.garbageSeed));
}

/** Random bytes, or with a seed the same bytes every time (SHA-256 in counter mode). */
function garbage(size: number, seed?: string): Buffer {
  if (seed === undefined) return randomBytes(size);
  const blocks: Buffer[] = [];
  for (let i = 0; i * 32 < size; i++) blocks.push(createHash('sha256').update(`${seed}:${i}`).digest());
  return Buffer.concat(blocks).subarray(0, size);
}

/** Splits a byte stream into CRLF lines (LF tolerated), with a cap so a hostile client cannot grow it. */
export class LineReader {
  #buffer = '';
  constructor(
    private readonly onLine: (line: string) => void,
    private readonly maxLine = 1024 * 1024,
  ) {}
  push(chunk: Buffer): void {
    this.#buffer += chunk.toString('latin1');
    for (;;) {
      const nl = this.#buffer.indexOf('\n');
      if (nl < 0) break;
      const line = this.#buffer.slice(0, nl).replace(/\r$/, '');
      this.#buffer = this.#buffer.slice(nl + 1);
      this.onLine(line);
    }
    if (this.#buffer.length > this.maxLine) this.#buffer = '';
  }
  /** Takes up to `n` raw bytes (an IMAP literal) from what is buffered; the rest later. */
  takeRaw(n: number): string {
    const part = this.#buffer.slice(0, n);
    this.#buffer = this.#buffer.slice(part.length);
    return part;
  }
}

/** A reader that hands the client's next lines to a continuation while one is set (IMAP, SMTP). */
export interface ContinuationReader {
  readonly conn: PeerConnection;
  continuation: ((line: string) => void) | undefined;
}

/**
 * Runs the client side of a SASL exchange (IMAP AUTHENTICATE, SMTP AUTH) to
 * the point where the server must answer: PLAIN with an initial response at
 * once, otherwise after the prompts (one empty prompt for PLAIN, user name
 * and password for LOGIN), each `promptPrefix` + base64. Then `then` answers.
 */
export function collectSaslCredentials(
  reader: ContinuationReader,
  args: string,
  promptPrefix: string,
  then: () => void,
): void {
  const [mechanism = '', initial] = args.split(/\s+/);
  const prompts = mechanism.toUpperCase() === 'LOGIN' ? ['VXNlcm5hbWU6', 'UGFzc3dvcmQ6'] : [''];
  if (initial !== undefined && initial !== '') prompts.shift();
  const next = () => {
    const prompt = prompts.shift();
    if (prompt === undefined) {
      reader.continuation = undefined;
      then();
      return;
    }
    reader.conn.write(`${promptPrefix}${prompt}\r\n`);
  };
  reader.continuation = () => next();
  next();
}

function sentInClear(sessions: readonly SessionRecord[], secret: string): boolean {
  const needle = Buffer.from(secret, 'utf8').toString('latin1');
  const quoted = needle.replace(/["\\]/g, '\\$&');
  for (const session of sessions) {
    const text = session.clearBytes.toString('latin1');
    if (text.includes(needle) || text.includes(quoted)) return true;
    for (const token of text.match(/[A-Za-z0-9+/]{4,}={0,2}/g) ?? []) {
      if (Buffer.from(token, 'base64').toString('latin1').includes(needle)) return true;
    }
  }
  return false;
}

/**
 * Starts a server on loopback that hands each connection to `script`
 * (after the implicit TLS handshake, if asked). The protocol modules call
 * this; tests call startHostileImap/Smtp/Xmpp or startHostilePeer.
 */
export async function startHostileServer(
  protocol: HostileProtocol,
  behaviour: HostileBehaviour,
  opts: HostileOptions,
  script: ConnectionScript,
): Promise<HostilePeer> {
  const host = opts.ipv6 ? '::1' : '127.0.0.1';
  const marker = opts.marker ?? randomMarker();
  const limit = opts.recordLimitBytes ?? DEFAULT_RECORD_LIMIT;
  const sessions: SessionRecord[] = [];
  const live = new Set<PeerConnection>();
  let context: Promise<SecureContext> | undefined;
  const secureContext = () => {
    context ??= throwAwayCertificate().then(({ key, cert }) => createSecureContext({ key, cert }));
    return context;
  };
  // Made before listening, so a test's first connection does not wait for openssl.
  if (opts.tls === 'implicit' || (behaviour === 'tls-stall' && (opts.stallAfterBytes ?? 0) > 0)) {
    await secureContext();
  }

  const server: Server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (raw) => {
    const session = new SessionRecord(sessions.length + 1, limit);
    sessions.push(session);
    const conn = new PeerConnection(raw, session, marker, opts, secureContext);
    live.add(conn);
    raw.once('close', () => live.delete(conn));
    void run(conn).catch(() => conn.destroy());
  });

  async function run(conn: PeerConnection): Promise<void> {
    if (behaviour === 'half-open') {
      if (opts.read) conn.read();
      return;
    }
    if (opts.tls === 'implicit') {
      if (behaviour === 'tls-stall') return conn.stallTls(opts.stallAfterBytes ?? 0);
      if (!(await conn.acceptTls())) return;
    }
    await script(conn);
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;

  let stopped: Promise<void> | undefined;
  return {
    protocol,
    behaviour,
    host,
    port,
    marker,
    connections: () => sessions.length,
    openConnections: () => live.size,
    bytesSent: () => sessions.reduce((n, s) => n + s.bytesSent, 0),
    bytesReceived: () => sessions.reduce((n, s) => n + s.bytesReceived, 0),
    sessions: () => sessions,
    receivedText: () => Buffer.concat(sessions.map((s) => s.received)).toString('latin1'),
    sentInClear: (secret) => sentInClear(sessions, secret),
    stop() {
      stopped ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const conn of live) conn.destroy();
        live.clear();
      });
      return stopped;
    },
  };
}

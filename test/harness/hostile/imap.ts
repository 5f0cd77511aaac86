/**
 * Hostile IMAP peers. Plausible enough for ImapFlow to get where the
 * misbehaviour bites: it waits for an untagged OK greeting, sends CAPABILITY,
 * then STARTTLS if offered, then AUTHENTICATE PLAIN (when AUTH=PLAIN is
 * advertised; without SASL-IR it waits for a "+" before the credentials) or
 * LOGIN. Tags are whatever the client chose; answers echo them.
 */
import {
  collectSaslCredentials,
  foreignBanner,
  type HostileBehaviour,
  type HostileOptions,
  type HostilePeer,
  type PeerConnection,
  randomBase64,
  sendGarbage,
  startHostileServer,
} from './peer.ts';

export interface HostileImapOptions extends HostileOptions {
  /**
   * huge: 'greeting' (default) a greeting line of hugeBytes; 'literal' a
   * normal greeting, then a hugeBytes literal (`* ID ("name" {n}…)`) before
   * the answer to the first command; 'teardown' a normal session whose
   * authentication is never answered, and the literal streamed (paced) once
   * the client sends LOGOUT or half-closes.
   */
  hugeAt?: 'greeting' | 'literal' | 'teardown';
  /**
   * wrong-sasl: 'wrong-tag' (default) answers the credentials with an OK
   * carrying a tag the client never used (and every later command too);
   * 'challenge-forever' answers every SASL line with another "+" challenge.
   */
  sasl?: 'wrong-tag' | 'challenge-forever';
  /** reset-midway: RST in the middle of the greeting, or of the answer to the credentials (default). */
  resetDuring?: 'greeting' | 'auth';
}

const CAPS = 'IMAP4rev1 AUTH=PLAIN AUTH=LOGIN ID';
const GREETING = `* OK [CAPABILITY ${CAPS}] hostile IMAP ready\r\n`;

export function startHostileImap(
  behaviour: HostileBehaviour,
  opts: HostileImapOptions = {},
): Promise<HostilePeer> {
  return startHostileServer('imap', behaviour, opts, (conn) => SCRIPTS[behaviour](conn, opts));
}

interface ImapCommand {
  tag: string;
  /** Upper-cased command name. */
  name: string;
  /** The rest of the line after the name. */
  args: string;
}

/**
 * Reads client commands, literals included (a synchronizing `{n}` gets its
 * "+"), and hands lines to a continuation handler while one is set (the
 * SASL exchange of AUTHENTICATE).
 */
class ImapReader {
  continuation: ((line: string) => void) | undefined;
  #buffer = '';
  #command = '';
  #literalLeft = 0;

  constructor(
    readonly conn: PeerConnection,
    private readonly onCommand: (cmd: ImapCommand) => void,
  ) {
    conn.onData((chunk) => this.#push(chunk));
  }

  #push(chunk: Buffer): void {
    this.#buffer += chunk.toString('latin1');
    while (!this.conn.closed) {
      if (this.#literalLeft > 0) {
        const part = this.#buffer.slice(0, this.#literalLeft);
        this.#buffer = this.#buffer.slice(part.length);
        this.#literalLeft -= part.length;
        if (this.#command.length < 65_536) this.#command += part;
        if (this.#literalLeft > 0) return;
        continue;
      }
      const nl = this.#buffer.indexOf('\n');
      if (nl < 0) break;
      const line = this.#buffer.slice(0, nl).replace(/\r$/, '');
      this.#buffer = this.#buffer.slice(nl + 1);
      const literal = /\{(\d+)(\+?)\}$/.exec(line);
      this.#command += line;
      if (literal && !this.continuation) {
        this.#literalLeft = Number(literal[1]);
        this.#command += '\r\n';
        if (!literal[2]) this.conn.write('+ Ready for literal data\r\n');
        continue;
      }
      const full = this.#command;
      this.#command = '';
      this.#deliver(full);
    }
    // A client that never ends its line must not grow the peer.
    if (this.#buffer.length > 1024 * 1024) this.#buffer = '';
  }

  #deliver(line: string): void {
    if (this.continuation) {
      this.continuation(line);
      return;
    }
    const match = /^(\S+)\s+(\S+)\s*(.*)$/s.exec(line);
    if (!match) {
      this.conn.write(`* BAD Invalid command\r\n`);
      return;
    }
    const [, tag = '*', name = '', args = ''] = match;
    this.onCommand({ tag, name: name.toUpperCase(), args });
  }
}

/** What a well-behaved server says to the commands that come before authentication. */
function answerPreAuth(conn: PeerConnection, cmd: ImapCommand, caps = CAPS): void {
  switch (cmd.name) {
    case 'CAPABILITY':
      conn.write(`* CAPABILITY ${caps}\r\n${cmd.tag} OK CAPABILITY completed\r\n`);
      return;
    case 'ID':
      conn.write(`* ID ("name" "hostile")\r\n${cmd.tag} OK ID completed\r\n`);
      return;
    case 'NOOP':
      conn.write(`${cmd.tag} OK NOOP completed\r\n`);
      return;
    case 'LOGOUT':
      conn.write(`* BYE Logging out\r\n${cmd.tag} OK LOGOUT completed\r\n`);
      conn.end();
      return;
    default:
      conn.write(`${cmd.tag} BAD Command not valid in this state\r\n`);
  }
}

function isAuth(cmd: ImapCommand): boolean {
  return cmd.name === 'AUTHENTICATE' || cmd.name === 'LOGIN';
}

/** LOGIN carries the credentials; AUTHENTICATE gets them after its "+" prompts. Then `then` answers. */
function collectCredentials(reader: ImapReader, cmd: ImapCommand, then: () => void): void {
  if (cmd.name === 'LOGIN') then();
  else collectSaslCredentials(reader, cmd.args, '+ ', then);
}

type Script = (conn: PeerConnection, opts: HostileImapOptions) => void | Promise<void>;

const SCRIPTS: Record<HostileBehaviour, Script> = {
  // Handled by the server before any script runs (it must not even read).
  'half-open': () => {},

  async 'slow-drip'(conn, opts) {
    conn.read();
    const interval = opts.dripIntervalMs ?? 500;
    await conn.drip(GREETING, interval);
    // After the greeting, untagged chatter that never completes a command: a watchdog
    // that counts any byte as life is kept busy forever.
    while (!conn.closed) await conn.drip('* OK Still here\r\n', interval);
  },

  async huge(conn, opts) {
    const size = opts.hugeBytes ?? 10 * 1024 * 1024;
    const chunk = opts.hugeChunkBytes ?? 64 * 1024;
    const at = opts.hugeAt ?? 'greeting';
    const interval = opts.hugeChunkIntervalMs ?? (at === 'teardown' ? 100 : 0);
    const literal = () => conn.stream(`* ID ("name" {${size}}\r\n`, size, ')\r\n', chunk, interval);
    let literalSent = false;
    let teardownStarted = false;
    const teardown = () => {
      if (teardownStarted) return;
      teardownStarted = true;
      void literal();
    };
    const reader = new ImapReader(conn, (cmd) => {
      if (at === 'teardown') {
        if (cmd.name === 'LOGOUT') return teardown();
        // Credentials are taken and never answered: the client must give up and tear down.
        if (isAuth(cmd)) return collectCredentials(reader, cmd, () => {});
        return answerPreAuth(conn, cmd);
      }
      if (at === 'literal' && !literalSent) {
        literalSent = true;
        void literal().then(() => respond(cmd));
        return;
      }
      respond(cmd);
    });
    const respond = (cmd: ImapCommand) => {
      if (isAuth(cmd)) {
        collectCredentials(reader, cmd, () =>
          conn.write(`${cmd.tag} NO [AUTHENTICATIONFAILED] Authentication failed.\r\n`),
        );
      } else {
        answerPreAuth(conn, cmd);
      }
    };
    if (at === 'teardown') conn.onEnd(teardown);
    if (at === 'greeting') await conn.stream('* OK ', size, '\r\n', chunk, interval);
    else conn.write(GREETING);
  },

  garbage(conn, opts) {
    sendGarbage(conn, opts.garbagePrefix ? '* OK [CAPABILITY IMAP4rev1] ' : undefined);
  },

  'wrong-sasl'(conn, opts) {
    const mode = opts.sasl ?? 'wrong-tag';
    const delay = opts.saslReplyDelayMs ?? 50;
    const reply = (text: string) => conn.after(delay, () => conn.write(text));
    let loggedIn = false;
    const wrongTag = () => `W${Math.floor(Math.random() * 1e6)}`;
    const reader = new ImapReader(conn, (cmd) => {
      if (loggedIn) {
        conn.write(`${wrongTag()} OK ${cmd.name} completed\r\n`);
        return;
      }
      if (!isAuth(cmd)) return answerPreAuth(conn, cmd);
      if (mode === 'challenge-forever') {
        reader.continuation = () => reply(`+ ${randomBase64()}\r\n`);
        reply(`+ ${randomBase64()}\r\n`);
        return;
      }
      collectCredentials(reader, cmd, () => {
        loggedIn = true;
        reply(
          `* OK [CAPABILITY IMAP4rev1] Logged in\r\n${wrongTag()} OK [CAPABILITY IMAP4rev1] Authenticated\r\n`,
        );
      });
    });
    conn.write(GREETING);
  },

  'banner-with-secrets'(conn, opts) {
    const banner = opts.banner ?? 'ssh';
    if (foreignBanner(conn, banner)) return;
    conn.read();
    conn.end(`* BYE [ALERT] ${conn.marker} service unavailable\r\n`);
  },

  'tls-stall'(conn, opts) {
    const caps = 'IMAP4rev1 STARTTLS LOGINDISABLED';
    let stalled = false;
    new ImapReader(conn, (cmd) => {
      if (stalled) return;
      if (cmd.name === 'STARTTLS') {
        stalled = true;
        conn.write(`${cmd.tag} OK Begin TLS negotiation now\r\n`);
        void conn.stallTls(opts.stallAfterBytes ?? 0);
        return;
      }
      if (cmd.name === 'CAPABILITY' || cmd.name === 'NOOP' || cmd.name === 'LOGOUT') {
        return answerPreAuth(conn, cmd, caps);
      }
      conn.write(`${cmd.tag} BAD Must issue a STARTTLS command first\r\n`);
    });
    conn.write(`* OK [CAPABILITY ${caps}] hostile IMAP ready\r\n`);
  },

  'reset-midway'(conn, opts) {
    if ((opts.resetDuring ?? 'auth') === 'greeting') {
      conn.read();
      conn.writeThenReset(GREETING.slice(0, 30));
      return;
    }
    const reader = new ImapReader(conn, (cmd) => {
      if (!isAuth(cmd)) return answerPreAuth(conn, cmd);
      collectCredentials(reader, cmd, () =>
        conn.writeThenReset(`* CAPABILITY IMAP4rev1 ENABLE IDLE\r\n${cmd.tag} OK [CAPABILITY IMAP4rev1 EN`),
      );
    });
    conn.write(GREETING);
  },
};

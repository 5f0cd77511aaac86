/**
 * Hostile SMTP peers. Plausible enough for nodemailer to get where the
 * misbehaviour bites: it waits for a 220 greeting, sends EHLO, then STARTTLS
 * if offered (unless told to ignore TLS), then AUTH PLAIN with the
 * credentials on the command line (or AUTH LOGIN after 334 prompts), then
 * MAIL, RCPT, DATA.
 */
import {
  collectSaslCredentials,
  foreignBanner,
  type HostileBehaviour,
  type HostileOptions,
  type HostilePeer,
  LineReader,
  type PeerConnection,
  randomBase64,
  sendGarbage,
  startHostileServer,
} from './peer.ts';

export interface HostileSmtpOptions extends HostileOptions {
  /**
   * huge: 'greeting' (default) a `220 ` line of hugeBytes; 'teardown' a
   * normal session whose AUTH is never answered, and a huge `221 ` line
   * streamed (paced) once the client sends QUIT or half-closes.
   */
  hugeAt?: 'greeting' | 'teardown';
  /**
   * wrong-sasl: 'early-235' (default) sends "235 Authentication successful"
   * right behind the EHLO reply, before any AUTH, and answers AUTH and every
   * later command with 235 as well; 'challenge-forever' answers AUTH and every
   * line after it with another 334 challenge.
   */
  sasl?: 'early-235' | 'challenge-forever';
  /**
   * reset-midway: RST in the middle of the greeting, of the answer to AUTH,
   * or (default) of the 250 that accepts the message after DATA: the client
   * cannot know whether the mail was taken.
   */
  resetDuring?: 'greeting' | 'auth' | 'data';
}

const GREETING = '220 hostile.test ESMTP ready\r\n';

function ehloReply(extensions: string[]): string {
  const lines = ['hostile.test at your service', ...extensions];
  return `${lines.map((line, i) => `250${i === lines.length - 1 ? ' ' : '-'}${line}`).join('\r\n')}\r\n`;
}

const EHLO = ehloReply(['SIZE 10485760', '8BITMIME', 'AUTH PLAIN LOGIN', 'SMTPUTF8']);

export function startHostileSmtp(
  behaviour: HostileBehaviour,
  opts: HostileSmtpOptions = {},
): Promise<HostilePeer> {
  return startHostileServer('smtp', behaviour, opts, (conn) => SCRIPTS[behaviour](conn, opts));
}

interface SmtpCommand {
  /** Upper-cased verb. */
  verb: string;
  args: string;
}

/** Reads commands, hands lines to a continuation while one is set (AUTH), and swallows DATA to its dot. */
class SmtpReader {
  continuation: ((line: string) => void) | undefined;
  #dataDone: (() => void) | undefined;

  constructor(
    readonly conn: PeerConnection,
    onCommand: (cmd: SmtpCommand) => void,
  ) {
    const lines = new LineReader((line) => {
      if (conn.closed) return;
      if (this.#dataDone) {
        if (line === '.') {
          const done = this.#dataDone;
          this.#dataDone = undefined;
          done();
        }
        return;
      }
      if (this.continuation) return this.continuation(line);
      const space = line.indexOf(' ');
      const verb = (space < 0 ? line : line.slice(0, space)).toUpperCase();
      onCommand({ verb, args: space < 0 ? '' : line.slice(space + 1) });
    });
    conn.onData((chunk) => lines.push(chunk));
  }

  /** The message body follows; `done` runs at its terminating dot. */
  readData(done: () => void): void {
    this.#dataDone = done;
  }
}

/** What a well-behaved server answers outside authentication. */
function answerBasic(conn: PeerConnection, cmd: SmtpCommand, ehlo = EHLO): void {
  switch (cmd.verb) {
    case 'EHLO':
      conn.write(ehlo);
      return;
    case 'HELO':
      conn.write('250 hostile.test\r\n');
      return;
    case 'NOOP':
    case 'RSET':
      conn.write('250 2.0.0 OK\r\n');
      return;
    case 'QUIT':
      conn.end('221 2.0.0 Bye\r\n');
      return;
    default:
      conn.write('502 5.5.1 Unrecognized command\r\n');
  }
}

/** AUTH gets the credentials after its 334 prompts (none for PLAIN with an initial response). Then `then` answers. */
function collectCredentials(reader: SmtpReader, cmd: SmtpCommand, then: () => void): void {
  collectSaslCredentials(reader, cmd.args, '334 ', then);
}

type Script = (conn: PeerConnection, opts: HostileSmtpOptions) => void | Promise<void>;

const SCRIPTS: Record<HostileBehaviour, Script> = {
  // Handled by the server before any script runs (it must not even read).
  'half-open': () => {},

  async 'slow-drip'(conn, opts) {
    conn.read();
    const interval = opts.dripIntervalMs ?? 500;
    // Continuation lines ("220-") keep the greeting open: it never completes.
    while (!conn.closed) await conn.drip('220-hostile.test ESMTP, one moment\r\n', interval);
  },

  async huge(conn, opts) {
    const size = opts.hugeBytes ?? 10 * 1024 * 1024;
    const chunk = opts.hugeChunkBytes ?? 64 * 1024;
    const at = opts.hugeAt ?? 'greeting';
    const interval = opts.hugeChunkIntervalMs ?? (at === 'teardown' ? 100 : 0);
    let teardownStarted = false;
    const teardown = () => {
      if (teardownStarted) return;
      teardownStarted = true;
      void conn.stream('221 ', size, '\r\n', chunk, interval);
    };
    const reader = new SmtpReader(conn, (cmd) => {
      if (at === 'teardown' && cmd.verb === 'QUIT') return teardown();
      if (cmd.verb === 'AUTH') {
        // At teardown the credentials are never answered: the client must give up.
        return collectCredentials(reader, cmd, () => {
          if (at !== 'teardown') conn.write('535 5.7.8 Authentication credentials invalid\r\n');
        });
      }
      answerBasic(conn, cmd);
    });
    if (at === 'teardown') {
      conn.onEnd(teardown);
      conn.write(GREETING);
    } else {
      await conn.stream('220 ', size, '\r\n', chunk, interval);
    }
  },

  garbage(conn, opts) {
    sendGarbage(conn, opts.garbagePrefix ? '220 hostile.test ESMTP ' : undefined);
  },

  'wrong-sasl'(conn, opts) {
    const mode = opts.sasl ?? 'early-235';
    const success = '235 2.7.0 Authentication successful\r\n';
    const delay = opts.saslReplyDelayMs ?? 50;
    const reply = (text: string) => conn.after(delay, () => conn.write(text));
    let greeted = false;
    const reader = new SmtpReader(conn, (cmd) => {
      if (cmd.verb === 'EHLO' || cmd.verb === 'HELO') {
        answerBasic(conn, cmd);
        // The success of an AUTH the client has not sent yet.
        if (mode === 'early-235' && !greeted) conn.write(success);
        greeted = true;
        return;
      }
      if (cmd.verb === 'QUIT') return answerBasic(conn, cmd);
      if (mode === 'early-235') {
        if (cmd.verb === 'AUTH') return collectCredentials(reader, cmd, () => reply(success));
        if (greeted) return reply(success);
        return answerBasic(conn, cmd);
      }
      if (cmd.verb !== 'AUTH') return answerBasic(conn, cmd);
      reader.continuation = () => reply(`334 ${randomBase64()}\r\n`);
      reply(`334 ${randomBase64()}\r\n`);
    });
    conn.write(GREETING);
  },

  'banner-with-secrets'(conn, opts) {
    const banner = opts.banner ?? 'ssh';
    if (foreignBanner(conn, banner)) return;
    conn.read();
    conn.end(`554 5.7.1 ${conn.marker} no SMTP service here\r\n`);
  },

  'tls-stall'(conn, opts) {
    const ehlo = ehloReply(['SIZE 10485760', '8BITMIME', 'STARTTLS']);
    let stalled = false;
    new SmtpReader(conn, (cmd) => {
      if (stalled) return;
      if (cmd.verb === 'STARTTLS') {
        stalled = true;
        conn.write('220 2.0.0 Ready to start TLS\r\n');
        void conn.stallTls(opts.stallAfterBytes ?? 0);
        return;
      }
      if (['EHLO', 'HELO', 'NOOP', 'RSET', 'QUIT'].includes(cmd.verb)) return answerBasic(conn, cmd, ehlo);
      conn.write('530 5.7.0 Must issue a STARTTLS command first\r\n');
    });
    conn.write(GREETING);
  },

  'reset-midway'(conn, opts) {
    const during = opts.resetDuring ?? 'data';
    if (during === 'greeting') {
      conn.read();
      conn.writeThenReset(GREETING.slice(0, 14));
      return;
    }
    const reader = new SmtpReader(conn, (cmd) => {
      switch (cmd.verb) {
        case 'AUTH':
          return collectCredentials(reader, cmd, () =>
            during === 'auth'
              ? conn.writeThenReset('235 2.7.0 Authentica')
              : conn.write('235 2.7.0 Authentication successful\r\n'),
          );
        case 'MAIL':
        case 'RCPT':
          return conn.write('250 2.1.0 OK\r\n');
        case 'DATA':
          conn.write('354 End data with <CR><LF>.<CR><LF>\r\n');
          return reader.readData(() => conn.writeThenReset('250 2.0.0 Ok: queu'));
        default:
          return answerBasic(conn, cmd);
      }
    });
    conn.write(GREETING);
  },
};

/**
 * Hostile XMPP (c2s) peers. Plausible enough for @xmpp/client to get where
 * the misbehaviour bites: it opens with `<?xml?><stream:stream to=…>` and
 * waits for the server's header and <stream:features>; it upgrades on
 * <starttls/> (verifying the certificate); over an unencrypted stream it
 * refuses PLAIN and picks SCRAM-SHA-1 when offered; after <success/> it
 * restarts the stream and binds a resource. Closing, it sends
 * `</stream:stream>` and waits (its `timeout`) for the server's.
 */
import { randomBytes } from 'node:crypto';
import { StringDecoder } from 'node:string_decoder';
import {
  foreignBanner,
  type HostileBehaviour,
  type HostileOptions,
  type HostilePeer,
  type PeerConnection,
  randomBase64,
  sendGarbage,
  startHostileServer,
} from './peer.ts';

export interface HostileXmppOptions extends HostileOptions {
  /** Domain in the server's stream header when the client names none; default the client's `to`, else hostile.test. */
  domain?: string;
  /**
   * SASL mechanisms offered. Default ['PLAIN'] for slow-drip and huge (#11
   * item 1: a client on an unencrypted stream refuses PLAIN and tears down
   * while the peer keeps talking), ['SCRAM-SHA-1', 'PLAIN'] otherwise (so
   * the client authenticates).
   */
  mechanisms?: string[];
  /**
   * huge: 'open' (default) a hugeBytes <message> stanza right after the
   * stream header, features after it; 'teardown' a normal header and
   * features, authentication never answered, and the stanza streamed
   * (paced) once the client sends </stream:stream> or half-closes.
   */
  hugeAt?: 'open' | 'teardown';
  /**
   * wrong-sasl: 'early-success' (default) sends <success/> before any
   * <auth>, answers every <auth> with <success/> carrying junk, and offers
   * SASL again after every stream restart (never resource binding), so the
   * client authenticates forever; 'challenge-forever' answers <auth> and
   * every <response> with another <challenge/> (the first one a well-formed
   * SCRAM server-first message when SCRAM is used).
   */
  sasl?: 'early-success' | 'challenge-forever';
  /** reset-midway: RST in the middle of the features, of the answer to <auth> (default), or of the bind result. */
  resetDuring?: 'features' | 'auth' | 'bind';
}

const NS_SASL = 'urn:ietf:params:xml:ns:xmpp-sasl';
const NS_TLS = 'urn:ietf:params:xml:ns:xmpp-tls';
const NS_BIND = 'urn:ietf:params:xml:ns:xmpp-bind';
const NS_STREAMS = 'urn:ietf:params:xml:ns:xmpp-streams';

export function startHostileXmpp(
  behaviour: HostileBehaviour,
  opts: HostileXmppOptions = {},
): Promise<HostilePeer> {
  return startHostileServer('xmpp', behaviour, opts, (conn) => SCRIPTS[behaviour](conn, opts));
}

interface XmppEvents {
  /** A client stream header; `to` is its domain. */
  open?(to: string | undefined): void;
  /** `</stream:stream>`. */
  close?(): void;
  /** A complete top-level element, as text. */
  element?(name: string, xml: string): void;
}

/**
 * Cuts the client's byte stream into stream headers, footers and top-level
 * elements. Not an XML parser: enough for what clients send before and
 * during authentication (no nested element of the same name).
 */
class XmppReader {
  #buffer = '';
  readonly #decoder = new StringDecoder('utf8');

  constructor(
    readonly conn: PeerConnection,
    private readonly events: XmppEvents,
  ) {
    conn.onData((chunk) => this.#push(chunk));
  }

  #push(chunk: Buffer): void {
    this.#buffer += this.#decoder.write(chunk);
    while (!this.conn.closed) {
      this.#buffer = this.#buffer.trimStart();
      const buf = this.#buffer;
      if (buf === '') return;
      let m = /^<\?xml[^>]*\?>/.exec(buf);
      if (m) {
        this.#consume(m[0]);
        continue;
      }
      m = /^<stream:stream\b[^>]*>/.exec(buf);
      if (m) {
        this.#consume(m[0]);
        this.events.open?.(/\bto=(['"])(.*?)\1/.exec(m[0])?.[2]);
        continue;
      }
      m = /^<\/stream:stream\s*>/.exec(buf);
      if (m) {
        this.#consume(m[0]);
        this.events.close?.();
        continue;
      }
      m = /^<([A-Za-z][\w:.-]*)\b[^>]*\/>/.exec(buf);
      if (m) {
        this.#consume(m[0]);
        this.events.element?.(m[1] ?? '', m[0]);
        continue;
      }
      m = /^<([A-Za-z][\w:.-]*)\b[^>]*>/.exec(buf);
      if (m) {
        const close = `</${m[1]}>`;
        const end = buf.indexOf(close);
        if (end < 0) break;
        const xml = buf.slice(0, end + close.length);
        this.#consume(xml);
        this.events.element?.(m[1] ?? '', xml);
        continue;
      }
      if (buf.startsWith('<')) break;
      // Text between elements (a whitespace keepalive aside) is junk: skip to the next tag.
      const next = buf.indexOf('<');
      this.#buffer = next < 0 ? '' : buf.slice(next);
    }
    if (this.#buffer.length > 1024 * 1024) this.#buffer = '';
  }

  #consume(text: string): void {
    this.#buffer = this.#buffer.slice(text.length);
  }
}

function attr(value: string): string {
  return value.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);
}

function header(domain: string): string {
  return (
    `<?xml version='1.0'?><stream:stream xmlns='jabber:client' ` +
    `xmlns:stream='http://etherx.jabber.org/streams' id='${randomBytes(8).toString('hex')}' ` +
    `from='${attr(domain)}' version='1.0' xml:lang='en'>`
  );
}

function saslFeatures(mechanisms: readonly string[]): string {
  const offered = mechanisms.map((m) => `<mechanism>${attr(m)}</mechanism>`).join('');
  return `<stream:features><mechanisms xmlns='${NS_SASL}'>${offered}</mechanisms></stream:features>`;
}

function domainFor(to: string | undefined, opts: HostileXmppOptions): string {
  return to ?? opts.domain ?? 'hostile.test';
}

/** The element's text content (base64 payloads), without its tags. */
function textOf(xml: string): string {
  return /^<[^>]*>([\s\S]*)<\/[^>]*>$/.exec(xml)?.[1]?.trim() ?? '';
}

type Script = (conn: PeerConnection, opts: HostileXmppOptions) => void | Promise<void>;

const SCRIPTS: Record<HostileBehaviour, Script> = {
  // Handled by the server before any script runs (it must not even read).
  'half-open': () => {},

  'slow-drip'(conn, opts) {
    const interval = opts.keepaliveIntervalMs ?? 20;
    let opened = false;
    new XmppReader(conn, {
      open(to) {
        if (opened) return;
        opened = true;
        conn.write(header(domainFor(to, opts)) + saslFeatures(opts.mechanisms ?? ['PLAIN']));
        // Whitespace keepalives forever: <auth>, </stream:stream> and a FIN change nothing.
        conn.every(interval, () => conn.write(' '));
      },
    });
  },

  huge(conn, opts) {
    const size = opts.hugeBytes ?? 10 * 1024 * 1024;
    const chunk = opts.hugeChunkBytes ?? 64 * 1024;
    const at = opts.hugeAt ?? 'open';
    const interval = opts.hugeChunkIntervalMs ?? (at === 'teardown' ? 100 : 0);
    const mechanisms = opts.mechanisms ?? ['PLAIN'];
    let domain = opts.domain ?? 'hostile.test';
    const stanza = (tail: string) =>
      conn.stream(
        `<message from='${attr(domain)}' type='chat' id='huge'><body>`,
        size,
        `</body></message>${tail}`,
        chunk,
        interval,
      );
    let teardownStarted = false;
    const teardown = () => {
      if (teardownStarted) return;
      teardownStarted = true;
      void stanza('');
    };
    let opened = false;
    new XmppReader(conn, {
      open(to) {
        if (opened) return;
        opened = true;
        domain = domainFor(to, opts);
        conn.write(header(domain));
        if (at === 'open') void stanza(saslFeatures(mechanisms));
        else conn.write(saslFeatures(mechanisms));
      },
      close: () => at === 'teardown' && teardown(),
    });
    if (at === 'teardown') conn.onEnd(teardown);
  },

  garbage(conn, opts) {
    if (!opts.garbagePrefix) return sendGarbage(conn, undefined);
    let sent = false;
    new XmppReader(conn, {
      open(to) {
        if (sent) return;
        sent = true;
        sendGarbage(conn, header(domainFor(to, opts)));
      },
    });
  },

  'wrong-sasl'(conn, opts) {
    const mode = opts.sasl ?? 'early-success';
    const mechanisms = opts.mechanisms ?? ['SCRAM-SHA-1', 'PLAIN'];
    const delay = opts.saslReplyDelayMs ?? 50;
    const reply = (text: string) => conn.after(delay, () => conn.write(text));
    new XmppReader(conn, {
      open(to) {
        // Every stream restart offers SASL again: authentication never leads anywhere.
        const early = mode === 'early-success' ? `<success xmlns='${NS_SASL}'/>` : '';
        conn.write(header(domainFor(to, opts)) + early + saslFeatures(mechanisms));
      },
      element(name, xml) {
        if (name !== 'auth' && name !== 'response') return;
        if (mode === 'early-success') {
          reply(`<success xmlns='${NS_SASL}'>${randomBase64()}</success>`);
          return;
        }
        reply(`<challenge xmlns='${NS_SASL}'>${challengeFor(name, xml)}</challenge>`);
      },
    });
  },

  'banner-with-secrets'(conn, opts) {
    const banner = opts.banner ?? 'http';
    if (foreignBanner(conn, banner)) return;
    new XmppReader(conn, {
      open(to) {
        conn.end(
          `${header(domainFor(to, opts))}<stream:error><host-unknown xmlns='${NS_STREAMS}'/>` +
            `<text xmlns='${NS_STREAMS}'>${conn.marker}</text></stream:error></stream:stream>`,
        );
      },
    });
  },

  'tls-stall'(conn, opts) {
    let stalled = false;
    new XmppReader(conn, {
      open(to) {
        if (stalled) return;
        conn.write(
          `${header(domainFor(to, opts))}<stream:features><starttls xmlns='${NS_TLS}'><required/></starttls></stream:features>`,
        );
      },
      element(name) {
        if (stalled || name !== 'starttls') return;
        stalled = true;
        conn.write(`<proceed xmlns='${NS_TLS}'/>`);
        void conn.stallTls(opts.stallAfterBytes ?? 0);
      },
    });
  },

  'reset-midway'(conn, opts) {
    const during = opts.resetDuring ?? 'auth';
    const mechanisms = opts.mechanisms ?? ['SCRAM-SHA-1', 'PLAIN'];
    let authenticated = false;
    let domain = opts.domain ?? 'hostile.test';
    new XmppReader(conn, {
      open(to) {
        domain = domainFor(to, opts);
        if (during === 'features') {
          const features = saslFeatures(mechanisms);
          conn.writeThenReset(header(domain) + features.slice(0, Math.floor(features.length / 2)));
        } else if (!authenticated) {
          conn.write(header(domain) + saslFeatures(mechanisms));
        } else {
          conn.write(`${header(domain)}<stream:features><bind xmlns='${NS_BIND}'/></stream:features>`);
        }
      },
      element(name, xml) {
        if (name === 'auth') {
          if (during === 'auth') {
            conn.writeThenReset(`<success xmlns='${NS_SASL.slice(0, 20)}`);
            return;
          }
          // A success without any exchange: the client does not check SCRAM's server signature here.
          authenticated = true;
          conn.write(`<success xmlns='${NS_SASL}'/>`);
          return;
        }
        if (name === 'iq' && xml.includes(NS_BIND)) {
          const id = /\bid=(['"])(.*?)\1/.exec(xml)?.[2] ?? 'bind';
          conn.writeThenReset(
            `<iq type='result' id='${attr(id)}'><bind xmlns='${NS_BIND}'><jid>user@${attr(domain)}/re`,
          );
        }
      },
    });
  },
};

/** A SCRAM server-first message for the client's first one (so the client gets one step further), junk after. */
function challengeFor(name: string, xml: string): string {
  if (name === 'auth' && /mechanism=(['"])SCRAM-SHA-1\1/.test(xml)) {
    const clientFirst = Buffer.from(textOf(xml), 'base64').toString('utf8');
    const nonce = /(?:^|,)r=([^,]*)/.exec(clientFirst)?.[1] ?? '';
    const serverFirst = `r=${nonce}${randomBytes(12).toString('hex')},s=${randomBase64(16)},i=4096`;
    return Buffer.from(serverFirst).toString('base64');
  }
  return randomBase64();
}

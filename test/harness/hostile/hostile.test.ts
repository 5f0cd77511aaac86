// The hostile-peers kit itself (README.md beside this file): driven by raw
// sockets, each peer does what it claims; driven by imapflow, nodemailer and
// @xmpp/client, the misbehaviour is reached. The gateway is not involved.
//
// A few checks are "nothing happens" checks (a peer that must stay silent,
// a handshake that must not complete): those watch for QUIET_MS, short on
// purpose, since a peer that misbehaves the wrong way does so at once.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer, connect as netConnect, type Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { describe, type TestContext, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { client as xmppClient } from '@xmpp/client';
import { ImapFlow } from 'imapflow';
import nodemailer from 'nodemailer';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { eventually } from '../../../testing/index.ts';
import {
  HOSTILE_BEHAVIOURS,
  type HostileBehaviour,
  type HostileOptionsByProtocol,
  type HostilePeer,
  type HostileProtocol,
  startHostileImap,
  startHostilePeer,
  startHostileSmtp,
  startHostileXmpp,
} from './index.ts';

const PROTOCOLS: readonly HostileProtocol[] = ['imap', 'smtp', 'xmpp'];
const MiB = 1024 * 1024;
const PASSWORD = 'pw-Hostile-1';
const PLAIN_CREDENTIALS = Buffer.from(`\0alice\0${PASSWORD}`).toString('base64');
const QUIET_MS = 300;
const REPO = fileURLToPath(new URL('../../..', import.meta.url));
const XMPP_OPEN =
  "<?xml version='1.0'?><stream:stream to='example.test' version='1.0' xml:lang='en' " +
  "xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";
const NS_SASL = 'urn:ietf:params:xml:ns:xmpp-sasl';
const HAS_LOOPBACK_V6 = await loopbackV6();

/** The bounded "nothing happens" watch (see the header). */
const quiet = () => new Promise((resolve) => setTimeout(resolve, QUIET_MS));

async function startPeer<P extends HostileProtocol>(
  t: TestContext,
  protocol: P,
  behaviour: HostileBehaviour,
  opts?: HostileOptionsByProtocol[P],
): Promise<HostilePeer> {
  const peer = await startHostilePeer(protocol, behaviour, opts);
  t.after(() => peer.stop());
  return peer;
}

/** A client socket that keeps everything it receives and how the connection ended. */
class RawClient {
  readonly chunks: Buffer[] = [];
  bytes = 0;
  ended = false;
  closed = false;
  error: NodeJS.ErrnoException | undefined;

  constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.chunks.push(chunk);
      this.bytes += chunk.length;
    });
    socket.on('end', () => {
      this.ended = true;
    });
    socket.on('close', () => {
      this.closed = true;
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      this.error = err;
    });
  }

  /** What arrived, as latin1; from `fromByte` on (whole chunks), so a 10 MiB prefix is not copied on every poll. */
  text(fromByte = 0): string {
    let offset = 0;
    const kept: Buffer[] = [];
    for (const chunk of this.chunks) {
      if (offset + chunk.length > fromByte) kept.push(chunk);
      offset += chunk.length;
    }
    return Buffer.concat(kept).toString('latin1');
  }

  write(data: string | Buffer): void {
    this.socket.write(data);
  }

  /** Waits until what arrived (from `fromByte`) contains `expected`, or matches it. */
  until(expected: string | RegExp, fromByte = 0): Promise<string> {
    return eventually(`the client to receive ${String(expected)}`, () => {
      const text = this.text(fromByte);
      const hit = typeof expected === 'string' ? text.includes(expected) : expected.test(text);
      return hit && text;
    });
  }

  /** Sends each line, waiting for its expected answer before the next. */
  async converse(steps: readonly (readonly [send: string, expect: string | RegExp])[]): Promise<void> {
    for (const [send, expect] of steps) {
      const from = this.bytes;
      this.write(send);
      await this.until(expect, from);
    }
  }
}

/** A connected client; with `tls`, once its handshake (certificate not checked) completed. */
async function rawClient(
  t: TestContext,
  peer: HostilePeer,
  opts: { tls?: boolean } = {},
): Promise<RawClient> {
  const target = { host: peer.host, port: peer.port };
  // allowHalfOpen: a test half-closes and keeps reading what the peer still sends.
  const socket = opts.tls
    ? tlsConnect({ ...target, rejectUnauthorized: false })
    : netConnect({ ...target, allowHalfOpen: true });
  t.after(() => socket.destroy());
  const client = new RawClient(socket);
  await new Promise<void>((resolve, reject) => {
    socket.once(opts.tls ? 'secureConnect' : 'connect', resolve);
    socket.once('error', reject);
  });
  return client;
}

/** Starts a TLS handshake over `socket`; `secure()` says whether it completed. */
function startTls(t: TestContext, socket: Socket): { tls: TLSSocket; secure: () => boolean } {
  let secure = false;
  const tls = tlsConnect({ socket, rejectUnauthorized: false });
  tls.on('secureConnect', () => {
    secure = true;
  });
  tls.on('error', () => {});
  t.after(() => tls.destroy());
  return { tls, secure: () => secure };
}

/**
 * The peer reset the connection, and the client saw it end: as ECONNRESET,
 * or as an end when its event loop found the partial answer and the RST
 * pending in the same poll (see RESET_DELAY_MS in peer.ts).
 */
function assertReset(peer: HostilePeer, client: RawClient): void {
  assert.ok(firstSession(peer).resetAt !== undefined, 'the peer sent RST');
  if (!client.ended) assert.equal(client.error?.code, 'ECONNRESET', 'RST, not FIN');
}

function firstSession(peer: HostilePeer) {
  const session = peer.sessions()[0];
  assert.ok(session, 'the peer accepted a connection');
  return session;
}

describe('every protocol × behaviour', () => {
  test('starts on loopback, accepts a connection and stops', async (t) => {
    for (const protocol of PROTOCOLS) {
      for (const behaviour of HOSTILE_BEHAVIOURS) {
        const peer = await startHostilePeer(protocol, behaviour);
        try {
          assert.equal(peer.host, '127.0.0.1');
          assert.equal(peer.protocol, protocol);
          assert.equal(peer.behaviour, behaviour);
          assert.match(peer.marker, /^SECRET-MARKER-[0-9a-f]{16}$/);
          const client = await rawClient(t, peer);
          await eventually(`${protocol} ${behaviour} to accept`, () => peer.connections() === 1);
          client.socket.destroy();
        } finally {
          await peer.stop();
        }
      }
    }
  });
});

describe('half-open', () => {
  test('accepts, says nothing, never reads, never closes (each protocol)', async (t) => {
    const clients: [HostilePeer, RawClient][] = [];
    for (const protocol of PROTOCOLS) {
      const peer = await startPeer(t, protocol, 'half-open');
      const client = await rawClient(t, peer);
      client.write('hello?\r\n');
      client.socket.end();
      clients.push([peer, client]);
    }
    await quiet();
    for (const [peer, client] of clients) {
      assert.equal(client.bytes, 0, `${peer.protocol}: nothing received`);
      assert.equal(client.ended, false, `${peer.protocol}: the peer never closes its side`);
      assert.equal(peer.connections(), 1);
      assert.equal(peer.openConnections(), 1);
      assert.equal(peer.bytesReceived(), 0, `${peer.protocol}: never read`);
    }
  });

  test('with read: records what the client sent and when it hung up', async (t) => {
    const peer = await startPeer(t, 'smtp', 'half-open', { read: true });
    const client = await rawClient(t, peer);
    client.write('EHLO device\r\n');
    await eventually('the peer to record EHLO', () => peer.receivedText() === 'EHLO device\r\n');
    client.socket.end();
    const session = await eventually('the hang-up', () => {
      const s = firstSession(peer);
      return s.clientEndedAt !== undefined && s;
    });
    assert.ok((session.clientEndedAt ?? 0) >= session.openedAt);
    assert.equal(client.bytes, 0);
  });
});

describe('slow-drip', () => {
  for (const [protocol, start] of [
    ['imap', '* OK [CAPABILITY'],
    ['smtp', '220-hostile.test'],
  ] as const) {
    test(`${protocol}: a valid-looking greeting, one byte at a time`, async (t) => {
      const interval = 30;
      const peer = await startPeer(t, protocol, 'slow-drip', { dripIntervalMs: interval });
      const client = await rawClient(t, peer);
      const began = Date.now();
      await eventually('8 bytes', () => client.bytes >= 8);
      const elapsed = Date.now() - began;
      assert.equal(client.text().slice(0, 8), start.slice(0, 8));
      // Seven pauses between eight bytes (timers never fire early by more than a ms or so).
      assert.ok(elapsed >= 6 * interval, `8 bytes took ${elapsed} ms`);
      // The peer sends each byte alone; a busy client may still read two or three at once.
      const reads = client.chunks.length;
      assert.ok(reads >= 3, `8 bytes came in ${reads} reads`);
    });
  }

  test('imap, smtp: never completes, keeps dripping after the greeting', async (t) => {
    const imap = await rawClient(t, await startPeer(t, 'imap', 'slow-drip', { dripIntervalMs: 1 }));
    const smtp = await rawClient(t, await startPeer(t, 'smtp', 'slow-drip', { dripIntervalMs: 1 }));
    await imap.until('hostile IMAP ready\r\n* OK Still here\r\n* OK');
    const text = await smtp.until(/(220-hostile\.test ESMTP, one moment\r\n){3}/);
    assert.doesNotMatch(text, /^220 /m, 'the SMTP greeting never ends');
  });

  test('xmpp: only PLAIN, then a space every 20 ms forever, even after the client closes', async (t) => {
    const peer = await startPeer(t, 'xmpp', 'slow-drip');
    const client = await rawClient(t, peer);
    client.write(XMPP_OPEN);
    const features = await client.until('</stream:features>');
    assert.match(
      features,
      /<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN<\/mechanism><\/mechanisms>/,
    );
    const keepalives = () => client.text().split('</stream:features>')[1] ?? '';
    await eventually('10 keepalives', () => keepalives().length >= 10);
    assert.match(keepalives(), /^ +$/);
    client.write(`<auth xmlns='${NS_SASL}' mechanism='PLAIN'>${PLAIN_CREDENTIALS}</auth></stream:stream>`);
    client.socket.end();
    const before = keepalives().length;
    await eventually(
      '10 more keepalives after </stream:stream> and FIN',
      () => keepalives().length >= before + 10,
    );
    assert.equal(client.ended, false, 'the peer never closes its side');
    assert.ok(firstSession(peer).clientEndedAt !== undefined, 'the peer saw the FIN');
    assert.ok(peer.sentInClear(PASSWORD), 'PLAIN credentials were recorded as sent in clear');
  });
});

describe('huge', () => {
  /** 16 chunks of 16 KiB, 10 ms apart: long enough to see the pacing, short for a test. */
  const PACED_TEARDOWN = {
    hugeAt: 'teardown',
    hugeBytes: 256 * 1024,
    hugeChunkBytes: 16 * 1024,
    hugeChunkIntervalMs: 10,
  } as const;

  test('imap: a 10 MiB greeting line, then the session goes on', async (t) => {
    const peer = await startPeer(t, 'imap', 'huge');
    const client = await rawClient(t, peer);
    await eventually(
      'the whole greeting',
      () => client.bytes >= 10 * MiB + 7 && client.chunks.at(-1)?.at(-1) === 0x0a,
    );
    assert.equal(client.text().slice(0, 5), '* OK ');
    const from = client.bytes;
    client.write('a CAPABILITY\r\n');
    await client.until('a OK CAPABILITY completed', from);
    assert.ok(peer.bytesSent() >= 10 * MiB);
  });

  test('imap: a huge literal before the answer to the first command', async (t) => {
    const peer = await startPeer(t, 'imap', 'huge', { hugeAt: 'literal', hugeBytes: MiB });
    const client = await rawClient(t, peer);
    await client.until('ready\r\n');
    client.write('a CAPABILITY\r\n');
    await eventually('the literal', () => client.bytes >= MiB);
    const text = await client.until('a OK CAPABILITY completed');
    assert.match(text, new RegExp(`\\* ID \\("name" \\{${MiB}\\}\\r\\n[^)]{${MiB}}\\)\\r\\n\\* CAPABILITY`));
  });

  test('imap: at teardown, streamed after LOGOUT or a FIN, paced', async (t) => {
    const size = PACED_TEARDOWN.hugeBytes;
    const peer = await startPeer(t, 'imap', 'huge', PACED_TEARDOWN);
    const byLogout = await rawClient(t, peer);
    await byLogout.until('ready\r\n');
    const afterGreeting = byLogout.bytes;
    byLogout.write(`a LOGIN alice "${PASSWORD}"\r\n`);
    await quiet();
    assert.equal(byLogout.bytes, afterGreeting, 'the login is never answered');
    const began = Date.now();
    byLogout.write('b LOGOUT\r\n');
    await eventually('the literal after LOGOUT', () => byLogout.bytes >= afterGreeting + size);
    assert.ok(Date.now() - began >= 100, 'paced: 16 chunks 10 ms apart');
    assert.equal(byLogout.ended, false);

    const byFin = await rawClient(t, peer);
    await byFin.until('ready\r\n');
    byFin.socket.end();
    await eventually('the literal after the client half-closed', () => byFin.bytes >= size);
  });

  test('smtp: a 10 MiB greeting line; at teardown a huge reply to QUIT', async (t) => {
    const greeting = await rawClient(t, await startPeer(t, 'smtp', 'huge'));
    await eventually('the whole greeting', () => greeting.bytes >= 10 * MiB + 6);
    assert.equal(greeting.text().slice(0, 4), '220 ');

    const peer = await startPeer(t, 'smtp', 'huge', {
      hugeAt: 'teardown',
      hugeBytes: 128 * 1024,
      hugeChunkIntervalMs: 1,
    });
    const client = await rawClient(t, peer);
    await client.converse([['EHLO device\r\n', '250 SMTPUTF8\r\n']]);
    // The AUTH is never answered; QUIT starts the teardown.
    client.write(`AUTH PLAIN ${PLAIN_CREDENTIALS}\r\n`);
    const from = client.bytes;
    client.write('QUIT\r\n');
    await eventually('the huge 221', () => client.bytes >= from + 128 * 1024);
    assert.equal(client.text(from).slice(0, 4), '221 ');
  });

  test('xmpp: a 10 MiB stanza before the features', async (t) => {
    const peer = await startPeer(t, 'xmpp', 'huge');
    const client = await rawClient(t, peer);
    client.write(XMPP_OPEN);
    await eventually('the stanza', () => client.bytes >= 10 * MiB);
    const tail = await client.until('</stream:features>', 10 * MiB - 64 * 1024);
    assert.match(tail, /<\/body><\/message><stream:features>/);
    assert.match(
      client.text().slice(0, 400),
      /<stream:stream [^>]*><message from='example.test' type='chat' id='huge'><body>hostile-filler/,
    );
  });

  test('xmpp: at teardown, streamed after </stream:stream>, paced', async (t) => {
    const size = PACED_TEARDOWN.hugeBytes;
    const peer = await startPeer(t, 'xmpp', 'huge', PACED_TEARDOWN);
    const client = await rawClient(t, peer);
    client.write(XMPP_OPEN);
    await client.until('</stream:features>');
    const from = client.bytes;
    const began = Date.now();
    client.write('</stream:stream>');
    client.socket.end();
    await eventually('the stanza after the client closed', () => client.bytes >= from + size);
    assert.ok(Date.now() - began >= 100, 'paced: 16 chunks 10 ms apart');
    assert.match(client.text(from).slice(0, 80), /^<message [^>]*><body>hostile-filler/);
    assert.equal(client.ended, false);
  });
});

describe('garbage', () => {
  test('random bytes after connect, then silence; with a prefix, protocol-looking first', async (t) => {
    for (const protocol of PROTOCOLS) {
      const plain = await rawClient(t, await startPeer(t, protocol, 'garbage'));
      await eventually(`${protocol}: 4 KiB of garbage`, () => plain.bytes === 4096);
      const prefixed = await rawClient(
        t,
        await startPeer(t, protocol, 'garbage', { garbagePrefix: true, garbageBytes: 100 }),
      );
      if (protocol === 'xmpp') prefixed.write(XMPP_OPEN);
      const prefix = {
        imap: '* OK [CAPABILITY IMAP4rev1] ',
        smtp: '220 hostile.test ESMTP ',
        xmpp: "<?xml version='1.0'?><stream:stream ",
      }[protocol];
      await eventually(`${protocol}: prefix and garbage`, () => prefixed.bytes >= prefix.length + 100);
      assert.equal(prefixed.text().slice(0, prefix.length), prefix);
      assert.equal(plain.ended, false);
      assert.equal(prefixed.ended, false);
    }
  });

  test('a seed makes the bytes reproducible', async (t) => {
    const seeded = await startPeer(t, 'smtp', 'garbage', { garbageSeed: 'x', garbageBytes: 1000 });
    const fresh = await startPeer(t, 'smtp', 'garbage', { garbageBytes: 1000 });
    const received = async (peer: HostilePeer) => {
      const client = await rawClient(t, peer);
      await eventually('1000 bytes', () => client.bytes === 1000);
      return client.text();
    };
    assert.equal(await received(seeded), await received(seeded));
    assert.notEqual(await received(fresh), await received(fresh));
  });
});

describe('wrong-sasl', () => {
  test('imap wrong-tag: the credentials are answered OK under a tag the client never used', async (t) => {
    const peer = await startPeer(t, 'imap', 'wrong-sasl', { saslReplyDelayMs: 0 });
    const client = await rawClient(t, peer);
    await client.until('AUTH=PLAIN');
    await client.converse([
      ['a AUTHENTICATE PLAIN\r\n', '+ \r\n'],
      [`${PLAIN_CREDENTIALS}\r\n`, 'Authenticated\r\n'],
    ]);
    const okLine = /^(\S+) OK \[CAPABILITY IMAP4rev1\] Authenticated$/m.exec(client.text());
    assert.ok(okLine && okLine[1] !== 'a', `a success under another tag: ${okLine?.[0]}`);
    assert.doesNotMatch(client.text(), /^a /m, "never the client's tag");
    assert.ok(peer.sentInClear(PASSWORD));
  });

  test('imap challenge-forever: every SASL line gets another challenge', async (t) => {
    const peer = await startPeer(t, 'imap', 'wrong-sasl', { sasl: 'challenge-forever', saslReplyDelayMs: 0 });
    const client = await rawClient(t, peer);
    await client.until('ready\r\n');
    await client.converse([
      ['a AUTHENTICATE PLAIN\r\n', /^\+ \S+\r\n/m],
      [`${PLAIN_CREDENTIALS}\r\n`, /^\+ \S+\r\n/m],
      ['*\r\n', /^\+ \S+\r\n/m],
      ['\r\n', /^\+ \S+\r\n/m],
    ]);
    assert.equal(client.text().match(/^\+ /gm)?.length, 4);
    assert.doesNotMatch(client.text(), /^a /m);
  });

  test('smtp early-235: success for an AUTH not sent yet, and for everything after', async (t) => {
    const peer = await startPeer(t, 'smtp', 'wrong-sasl', { saslReplyDelayMs: 0 });
    const client = await rawClient(t, peer);
    await client.until('220 ');
    await client.converse([
      ['EHLO device\r\n', '250 SMTPUTF8\r\n235 2.7.0 Authentication successful\r\n'],
      ['MAIL FROM:<alice@example.test>\r\n', '235 2.7.0 Authentication successful\r\n'],
    ]);
    assert.doesNotMatch(peer.receivedText(), /AUTH/);
  });

  test('smtp challenge-forever: AUTH and every line after it get another 334', async (t) => {
    const peer = await startPeer(t, 'smtp', 'wrong-sasl', { sasl: 'challenge-forever', saslReplyDelayMs: 0 });
    const client = await rawClient(t, peer);
    await client.until('220 ');
    await client.converse([
      ['EHLO device\r\n', '250 SMTPUTF8\r\n'],
      [`AUTH PLAIN ${PLAIN_CREDENTIALS}\r\n`, /^334 \S+\r\n/m],
      ['\r\n', /^334 \S+\r\n/m],
      ['*\r\n', /^334 \S+\r\n/m],
    ]);
    assert.equal(client.text().match(/^334 /gm)?.length, 3);
  });

  test('xmpp early-success: <success/> before any auth, and SASL again after every restart', async (t) => {
    const peer = await startPeer(t, 'xmpp', 'wrong-sasl', { saslReplyDelayMs: 0 });
    const client = await rawClient(t, peer);
    client.write(XMPP_OPEN);
    const opening = await client.until('</stream:features>');
    assert.match(opening, /<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'\/><stream:features><mechanisms/);
    await client.converse([
      [
        `<auth xmlns='${NS_SASL}' mechanism='PLAIN'>${PLAIN_CREDENTIALS}</auth>`,
        /<success xmlns='[^']+'>[^<]+<\/success>/,
      ],
      [XMPP_OPEN, '</stream:features>'],
    ]);
    const restarted = client.text().split('</success>').at(-1) ?? '';
    assert.match(restarted, /<mechanism>SCRAM-SHA-1<\/mechanism><mechanism>PLAIN<\/mechanism>/);
    assert.doesNotMatch(restarted, /<bind/);
  });

  test('xmpp challenge-forever: a SCRAM server-first message, then junk challenges', async (t) => {
    const peer = await startPeer(t, 'xmpp', 'wrong-sasl', { sasl: 'challenge-forever', saslReplyDelayMs: 0 });
    const client = await rawClient(t, peer);
    client.write(XMPP_OPEN);
    await client.until('</stream:features>');
    const clientFirst = Buffer.from('n,,n=alice,r=clientnonce').toString('base64');
    await client.converse([
      [`<auth xmlns='${NS_SASL}' mechanism='SCRAM-SHA-1'>${clientFirst}</auth>`, '</challenge>'],
      [`<response xmlns='${NS_SASL}'>Yz1iaXdz</response>`, '</challenge>'],
    ]);
    const challenges = [...client.text().matchAll(/<challenge [^>]*>([^<]*)<\/challenge>/g)].map((m) =>
      Buffer.from(m[1] ?? '', 'base64').toString('latin1'),
    );
    assert.match(challenges[0] ?? '', /^r=clientnonce[0-9a-f]+,s=[^,]+,i=4096$/);
    assert.equal(challenges.length, 2);
  });
});

describe('banner-with-secrets', () => {
  const cases: [HostileProtocol, 'ssh' | 'http' | 'native' | undefined, string, RegExp][] = [
    ['imap', undefined, '', /^SSH-2\.0-OpenSSH_9\.2p1 \S+ (SECRET-MARKER-\w+)\r\n/],
    ['smtp', undefined, '', /^SSH-2\.0-OpenSSH_9\.2p1 \S+ (SECRET-MARKER-\w+)\r\n/],
    [
      'xmpp',
      undefined,
      XMPP_OPEN,
      /^HTTP\/1\.1 200 OK\r\n[\s\S]*Set-Cookie: session=(SECRET-MARKER-\w+);[\s\S]*\r\n\r\n<html>/,
    ],
    [
      'smtp',
      'http',
      'EHLO device\r\n',
      /^HTTP\/1\.1 200 OK\r\n[\s\S]*Set-Cookie: session=(SECRET-MARKER-\w+);/,
    ],
    ['xmpp', 'ssh', '', /^SSH-2\.0-\S+ \S+ (SECRET-MARKER-\w+)\r\n/],
    ['imap', 'native', '', /^\* BYE \[ALERT\] (SECRET-MARKER-\w+) service unavailable\r\n$/],
    ['smtp', 'native', '', /^554 5\.7\.1 (SECRET-MARKER-\w+) no SMTP service here\r\n$/],
    [
      'xmpp',
      'native',
      XMPP_OPEN,
      /<stream:error><host-unknown [^>]*\/><text [^>]*>(SECRET-MARKER-\w+)<\/text><\/stream:error><\/stream:stream>$/,
    ],
  ];
  for (const [protocol, banner, send, expected] of cases) {
    test(`${protocol} ${banner ?? '(default)'}: the marker in the first bytes, then the peer hangs up`, async (t) => {
      const peer = await startPeer(t, protocol, 'banner-with-secrets', banner ? { banner } : {});
      const client = await rawClient(t, peer);
      if (send) client.write(send);
      const text = await client.until(expected);
      assert.equal(expected.exec(text)?.[1], peer.marker);
      if (!send) client.write('hello\r\n');
      await eventually('the peer to hang up', () => client.ended);
    });
  }

  test("a marker of the test's choosing", async (t) => {
    const peer = await startPeer(t, 'smtp', 'banner-with-secrets', {
      marker: 'SECRET-MARKER-mine',
      banner: 'native',
    });
    const client = await rawClient(t, peer);
    await client.until('554 5.7.1 SECRET-MARKER-mine');
  });
});

describe('tls-stall', () => {
  const starttls: Record<HostileProtocol, readonly (readonly [string, string | RegExp])[]> = {
    imap: [
      ['a LOGIN alice pw\r\n', 'a BAD Must issue a STARTTLS command first'],
      ['b STARTTLS\r\n', 'b OK Begin TLS negotiation now\r\n'],
    ],
    smtp: [
      ['EHLO device\r\n', '250 STARTTLS\r\n'],
      ['MAIL FROM:<alice@example.test>\r\n', '530 5.7.0 Must issue a STARTTLS command first'],
      ['STARTTLS\r\n', '220 2.0.0 Ready to start TLS\r\n'],
    ],
    xmpp: [
      [
        XMPP_OPEN,
        "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features>",
      ],
      [
        "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>",
        "<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>",
      ],
    ],
  };

  for (const protocol of PROTOCOLS) {
    test(`${protocol}: STARTTLS is offered and accepted, the handshake never completes`, async (t) => {
      const peer = await startPeer(t, protocol, 'tls-stall');
      const client = await rawClient(t, peer);
      if (protocol === 'imap') assert.match(await client.until('ready'), /STARTTLS LOGINDISABLED/);
      if (protocol === 'smtp') await client.until('220 ');
      await client.converse(starttls[protocol]);
      const { tls, secure } = startTls(t, client.socket);
      const session = firstSession(peer);
      // 0x16 0x03: a TLS handshake record, the ClientHello.
      await eventually('the ClientHello at the peer', () =>
        session.clearBytes.includes(Buffer.of(0x16, 0x03)),
      );
      await quiet();
      assert.equal(secure(), false);
      assert.equal(session.tls, 'stalled');
      assert.equal(peer.openConnections(), 1);
      assert.equal(tls.destroyed, false);
    });
  }

  test('implicit TLS: the ClientHello is never answered', async (t) => {
    const peer = await startPeer(t, 'imap', 'tls-stall', { tls: 'implicit' });
    const client = await rawClient(t, peer);
    const { secure } = startTls(t, client.socket);
    await eventually('the ClientHello at the peer', () => firstSession(peer).clearBytes[0] === 0x16);
    await quiet();
    assert.equal(secure(), false);
    assert.equal(peer.bytesSent(), 0);
    assert.equal(peer.openConnections(), 1);
  });

  test('stallAfterBytes: the first bytes of a real server handshake, then nothing', async (t) => {
    const peer = await startPeer(t, 'smtp', 'tls-stall', { tls: 'implicit', stallAfterBytes: 60 });
    const raw = await rawClient(t, peer);
    // The TLS client talks through this pipe, so the test sees the bytes the peer sent back.
    const pipe = new Duplex({
      read() {},
      write(chunk: Buffer, _encoding, callback) {
        raw.write(chunk);
        callback();
      },
    });
    raw.socket.on('data', (chunk: Buffer) => pipe.push(chunk));
    const { secure } = startTls(t, pipe as unknown as Socket);
    await eventually('60 bytes of handshake', () => raw.bytes === 60);
    await quiet();
    assert.equal(raw.bytes, 60);
    assert.equal(raw.chunks[0]?.[0], 0x16, 'a handshake record (ServerHello)');
    assert.equal(secure(), false);
    assert.equal(peer.openConnections(), 1);
  });
});

describe('reset-midway', () => {
  type Step = readonly [send: string, expect: string | RegExp];
  interface ResetCase {
    protocol: HostileProtocol;
    opts?: HostileOptionsByProtocol[HostileProtocol];
    /** The exchange before the answer that is cut. */
    steps: readonly Step[];
    /** What makes the peer give that answer ('' when it comes unasked). */
    trigger: string;
    /** How the received text ends: mid-answer. */
    partial: string;
  }
  const SMTP_READY: Step = ['EHLO device\r\n', '250 SMTPUTF8\r\n'];
  const XMPP_READY: Step = [XMPP_OPEN, '</stream:features>'];
  const SCRAM_AUTH = `<auth xmlns='${NS_SASL}' mechanism='SCRAM-SHA-1'>biws</auth>`;
  const cases: ResetCase[] = [
    {
      protocol: 'imap',
      opts: { resetDuring: 'greeting' },
      steps: [],
      trigger: '',
      partial: '* OK [CAPABILITY IMAP4rev1 AUT',
    },
    {
      protocol: 'imap',
      steps: [['a CAPABILITY\r\n', 'a OK CAPABILITY']],
      trigger: `b LOGIN alice "${PASSWORD}"\r\n`,
      partial: '\r\nb OK [CAPABILITY IMAP4rev1 EN',
    },
    {
      protocol: 'smtp',
      opts: { resetDuring: 'greeting' },
      steps: [],
      trigger: '',
      partial: '220 hostile.te',
    },
    {
      protocol: 'smtp',
      opts: { resetDuring: 'auth' },
      steps: [SMTP_READY],
      trigger: `AUTH PLAIN ${PLAIN_CREDENTIALS}\r\n`,
      partial: '235 2.7.0 Authentica',
    },
    {
      protocol: 'smtp',
      steps: [
        SMTP_READY,
        [`AUTH PLAIN ${PLAIN_CREDENTIALS}\r\n`, '235 2.7.0 Authentication successful\r\n'],
        ['MAIL FROM:<alice@example.test>\r\n', '250 2.1.0'],
        ['RCPT TO:<bob@example.test>\r\n', '250 2.1.0'],
        ['DATA\r\n', '354 '],
      ],
      trigger: 'Subject: hi\r\n\r\nhello\r\n.\r\n',
      partial: '250 2.0.0 Ok: queu',
    },
    {
      protocol: 'xmpp',
      opts: { resetDuring: 'features' },
      steps: [],
      trigger: XMPP_OPEN,
      partial: "<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>",
    },
    {
      protocol: 'xmpp',
      steps: [XMPP_READY],
      trigger: SCRAM_AUTH,
      partial: "<success xmlns='urn:ietf:params:xml:",
    },
    {
      protocol: 'xmpp',
      opts: { resetDuring: 'bind' },
      steps: [XMPP_READY, [SCRAM_AUTH, '<success'], [XMPP_OPEN, '</stream:features>']],
      trigger: "<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>",
      partial:
        "<iq type='result' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>user@example.test/re",
    },
  ];

  for (const { protocol, opts = {}, steps, trigger, partial } of cases) {
    const resetDuring = 'resetDuring' in opts ? opts.resetDuring : undefined;
    test(`${protocol} during ${resetDuring ?? 'the default point'}: a partial answer, then RST`, async (t) => {
      const peer = await startPeer(t, protocol, 'reset-midway', opts);
      const client = await rawClient(t, peer);
      if (protocol !== 'xmpp' && resetDuring !== 'greeting') await client.until('ready\r\n');
      await client.converse(steps);
      const from = client.bytes;
      if (trigger) client.write(trigger);
      await eventually('the reset', () => client.closed || client.ended);
      assertReset(peer, client);
      const text = client.text(from);
      assert.ok(text.endsWith(partial), `ends mid-answer: ${JSON.stringify(text.slice(-100))}`);
    });
  }
});

describe('recording, TLS option, IPv6, stop', () => {
  test('sentInClear: as is, IMAP-quoted, or in base64; never what went inside TLS', async (t) => {
    const tricky = 'p"w\\1';
    const sent = async (text: string, opts: HostileOptionsByProtocol['smtp'] = {}) => {
      const peer = await startPeer(t, 'smtp', 'half-open', { read: true, ...opts });
      const client = await rawClient(t, peer);
      client.write(text);
      await eventually('the peer to record it', () => peer.bytesReceived() === Buffer.byteLength(text));
      return peer;
    };
    assert.ok((await sent(`LOGIN ${tricky}\r\n`)).sentInClear(tricky));
    assert.ok((await sent('a LOGIN alice "p\\"w\\\\1"\r\n')).sentInClear(tricky));
    assert.ok(
      (await sent(`AUTH PLAIN ${Buffer.from(`\0alice\0${tricky}`).toString('base64')}\r\n`)).sentInClear(
        tricky,
      ),
    );
    assert.equal((await sent('AUTH PLAIN AGFsaWNlAG90aGVy\r\n')).sentInClear(tricky), false);
  });

  test('implicit TLS: the behaviour runs inside a completed handshake', async (t) => {
    const peer = await startPeer(t, 'imap', 'reset-midway', { tls: 'implicit' });
    const client = await rawClient(t, peer, { tls: true });
    await client.until('hostile IMAP ready\r\n');
    client.write(`a LOGIN alice "${PASSWORD}"\r\n`);
    await eventually('the reset', () => client.closed || client.ended);
    assertReset(peer, client);
    assert.ok(client.text().endsWith('a OK [CAPABILITY IMAP4rev1 EN'));
    assert.equal(firstSession(peer).tls, 'established');
    assert.ok(peer.receivedText().includes(PASSWORD), 'recorded after decryption');
    assert.equal(peer.sentInClear(PASSWORD), false, 'but not in clear');
  });

  test('ipv6: listens on ::1', { skip: !HAS_LOOPBACK_V6 && 'no ::1 here' }, async (t) => {
    const peer = await startPeer(t, 'smtp', 'banner-with-secrets', { ipv6: true, banner: 'native' });
    assert.equal(peer.host, '::1');
    const client = await rawClient(t, peer);
    await client.until(`554 5.7.1 ${peer.marker}`);
  });

  test('stop() destroys every connection whatever its state, closes the server, and is idempotent', async (t) => {
    const peers = [
      await startHostileImap('half-open'),
      await startHostileSmtp('slow-drip', { dripIntervalMs: 5 }),
      await startHostileXmpp('slow-drip'),
      await startHostileSmtp('tls-stall', { tls: 'implicit' }),
      await startHostileImap('huge', { hugeAt: 'teardown', hugeChunkIntervalMs: 5 }),
    ];
    const clients: RawClient[] = [];
    for (const peer of peers) {
      t.after(() => peer.stop());
      const client = await rawClient(t, peer);
      if (peer.protocol === 'xmpp') client.write(XMPP_OPEN);
      if (peer.behaviour === 'tls-stall') startTls(t, client.socket);
      if (peer.behaviour === 'huge') client.socket.end();
      clients.push(client);
    }
    await eventually(
      'traffic on the talking peers',
      () => clients[1]?.bytes && clients[2]?.bytes && clients[4]?.bytes,
    );
    await Promise.all(peers.map((peer) => peer.stop()));
    await Promise.all(peers.map((peer) => peer.stop()));
    // The raw clients are half-open capable: the peer's FIN shows as 'end', a wrapped TLS socket's as 'close'.
    await eventually('every client to see its connection gone', () =>
      clients.every((c) => c.ended || c.closed),
    );
    for (const peer of peers) {
      assert.equal(peer.openConnections(), 0);
      assert.ok(peer.sessions().every((s) => s.closedAt !== undefined));
      const refused = await new Promise<string | undefined>((resolve) => {
        const socket = netConnect({ host: peer.host, port: peer.port });
        socket.once('connect', () => {
          socket.destroy();
          resolve(undefined);
        });
        socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code));
      });
      assert.equal(refused, 'ECONNREFUSED');
    }
  });
});

describe('the client libraries reach the misbehaviour', () => {
  test('imapflow reads the whole 10 MiB greeting and goes on to authenticate', async (t) => {
    const peer = await startPeer(t, 'imap', 'huge');
    const imap = new ImapFlow({
      host: peer.host,
      port: peer.port,
      secure: false,
      auth: { user: 'alice', pass: PASSWORD },
      logger: false,
      connectionTimeout: 15_000,
      greetingTimeout: 15_000,
      socketTimeout: 15_000,
    });
    imap.on('error', () => {});
    t.after(() => imap.close());
    await assert.rejects(imap.connect(), /Command failed/);
    assert.ok(peer.bytesSent() >= 10 * MiB);
    assert.match(peer.receivedText(), /^\d+ AUTHENTICATE PLAIN\r\n/m);
  });

  test('nodemailer surfaces an error that carries the SSH banner and its marker', async (t) => {
    const peer = await startPeer(t, 'smtp', 'banner-with-secrets');
    const transport = nodemailer.createTransport({
      host: peer.host,
      port: peer.port,
      secure: false,
      auth: { user: 'alice', pass: PASSWORD },
      connectionTimeout: 15_000,
      greetingTimeout: 15_000,
      logger: false,
    });
    t.after(() => transport.close());
    // The library's own message echoes the peer's bytes: what the gateway must never pass on (#11 item 2).
    await assert.rejects(transport.verify(), (err: NodeJS.ErrnoException) => {
      assert.equal(err.code, 'EPROTOCOL');
      assert.ok(err.message.includes(peer.marker), err.message);
      return true;
    });
    assert.equal(peer.sentInClear(PASSWORD), false);
  });

  test('@xmpp/client gets to SASL against slow-drip (PLAIN only) and refuses it in clear', async (t) => {
    const peer = await startPeer(t, 'xmpp', 'slow-drip');
    const xmpp = xmppClient({
      service: `xmpp://${peer.host}:${peer.port}`,
      domain: 'example.test',
      username: 'alice',
      password: PASSWORD,
      timeout: 1000,
    });
    xmpp.reconnect.stop();
    xmpp.on('error', () => {});
    // The peer goes first: stopping the client while the keepalives still flow is #11 item 1's crash.
    t.after(async () => {
      await peer.stop();
      await xmpp.stop().catch(() => {});
    });
    await assert.rejects(xmpp.start(), /SASL/);
    assert.equal(peer.sentInClear(PASSWORD), false);
    const sent = peer.bytesSent();
    await eventually('more keepalives', () => peer.bytesSent() >= sent + 5);
  });

  test('@xmpp/client stopping against slow-drip dies as in #11 item 1 (child process)', async () => {
    const script = `
      import { client } from '@xmpp/client';
      import { startHostileXmpp } from './test/harness/hostile/index.ts';
      const peer = await startHostileXmpp('slow-drip');
      const x = client({ service: 'xmpp://127.0.0.1:' + peer.port, domain: 'example.test',
        username: 'alice', password: 'pw', timeout: 300 });
      x.reconnect.stop();
      x.on('error', () => {});
      await x.start().catch(() => {});
      await x.stop().catch(() => {});
      setTimeout(() => { console.log('survived'); process.exit(0); }, 3000);
    `;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: REPO,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => {
      output += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      output += d.toString();
    });
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    assert.notEqual(
      code,
      0,
      `the bare library no longer crashes here; item 1 needs another trigger:\n${output}`,
    );
    assert.match(output, /TypeError: Cannot read properties of null \(reading 'write'\)/);
    assert.match(output, /@xmpp\/connection\/index\.js/);
  });
});

async function loopbackV6(): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(0, '::1', () => server.close(() => resolve(true)));
  });
}

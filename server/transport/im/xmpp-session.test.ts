// The session under the outbound policy, against small local servers: what is refused never
// gets a connection, and what is allowed is reached at the checked address, with the JID's
// domain as the stream's and TLS's name. (The session against Prosody: test/integration.)
import assert from 'node:assert/strict';
import { type AddressInfo, createServer, type Socket } from 'node:net';
import { describe, test, type TestContext } from 'node:test';
import tls, { createServer as createTlsServer, TLSSocket } from 'node:tls';
import { GatewayError } from '../../../device-protocol/errors.ts';
import { eventually } from '../../../testing/index.ts';
import { DestinationPolicy, type ResolvedAddress } from '../../net/destination-policy.ts';
import type { SrvResolver } from './xmpp/destination.ts';
import { XmppAccountSession, type XmppAccountSessionOptions } from './xmpp-session.ts';

const NS_TLS = 'urn:ietf:params:xml:ns:xmpp-tls';

interface Seen {
  /** The `to` of each stream header a client sent, and the SNI of each TLS handshake. */
  streamTo: string[];
  sni: string[];
  connections: number;
}

/**
 * An XMPP server on `address`: answers a stream header with features offering
 * `starttls` or only PLAIN (which a client refuses in clear, ending the
 * attempt); 'direct' listens for TLS. TLS never completes (there is no
 * certificate): the SNI is all it is for.
 */
async function startServer(
  t: TestContext,
  address: string,
  mode: 'plain' | 'starttls' | 'direct' = 'plain',
): Promise<Seen & { port: number }> {
  const seen: Seen = { streamTo: [], sni: [], connections: 0 };
  const sockets = new Set<Socket>();
  const sniCallback = (name: string, cb: (err: Error | null) => void) => {
    seen.sni.push(name);
    cb(new Error('no certificate here'));
  };
  const onConnection = (socket: Socket) => {
    seen.connections++;
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('data', (d) => {
      const text = d.toString('utf8');
      const to = /<stream:stream\b[^>]*\bto=(['"])(.*?)\1/.exec(text)?.[2];
      if (to !== undefined) {
        seen.streamTo.push(to);
        const features =
          mode === 'starttls'
            ? `<starttls xmlns='${NS_TLS}'/>`
            : "<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms>";
        socket.write(
          "<?xml version='1.0'?><stream:stream xmlns='jabber:client' " +
            "xmlns:stream='http://etherx.jabber.org/streams' id='s' from='example.test' version='1.0'>" +
            `<stream:features>${features}</stream:features>`,
        );
      } else if (text.includes('<starttls')) {
        // The client's ClientHello follows our <proceed/>: TLS takes the socket over at once.
        socket.removeAllListeners('data');
        socket.write(`<proceed xmlns='${NS_TLS}'/>`);
        const tls = new TLSSocket(socket, { isServer: true, SNICallback: sniCallback });
        tls.on('error', () => {});
      }
    });
  };
  const server =
    mode === 'direct' ? createTlsServer({ SNICallback: sniCallback }, () => {}) : createServer(onConnection);
  if (mode === 'direct') {
    server.on('connection', (socket: Socket) => {
      seen.connections++;
      sockets.add(socket);
    });
    server.on('tlsClientError', () => {});
  }
  await new Promise<void>((resolve) => server.listen(0, address, resolve));
  t.after(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  return Object.assign(seen, { port: (server.address() as AddressInfo).port });
}

/** A policy whose resolver answers from a table (no DNS), as the operator configured it. */
function policy(addresses: Record<string, string>, allow: string[] = []) {
  return new DestinationPolicy({
    allow,
    resolve: async (host): Promise<ResolvedAddress[]> => {
      const address = addresses[host];
      if (address === undefined)
        throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
      return [{ address, family: 4 }];
    },
  });
}

function srv(table: Record<string, { name: string; port: number }>): SrvResolver {
  return async (name) => {
    const r = table[name];
    if (r === undefined) throw Object.assign(new Error(`querySrv ENOTFOUND ${name}`), { code: 'ENOTFOUND' });
    return [{ ...r, priority: 0, weight: 0 }];
  };
}

async function login(
  t: TestContext,
  settings: { host?: string; port?: number },
  opts: Partial<XmppAccountSessionOptions>,
): Promise<unknown> {
  const session = new XmppAccountSession({
    settings: { jid: 'alice@example.test', password: 'pw', ...settings },
    connectTimeoutMs: 3000,
    closeTimeoutMs: 200,
    ...opts,
  });
  t.after(() => session.stop());
  try {
    await session.start();
    return undefined;
  } catch (err) {
    return err;
  }
}

const isRefusal = (err: unknown) =>
  err instanceof GatewayError && err.code === 'policy.destination_not_allowed';

describe('XmppAccountSession under the outbound policy', () => {
  test('loopback is refused before any connection: by address, by name, as an SRV target', async (t) => {
    const server = await startServer(t, '127.0.0.1');
    const p = policy({ 'xmpp.example.test': '127.0.0.1', 'inside.example.test': '127.0.0.1' });
    assert.ok(isRefusal(await login(t, { host: '127.0.0.1', port: server.port }, { policy: p })));
    assert.ok(isRefusal(await login(t, { host: 'xmpp.example.test', port: server.port }, { policy: p })));
    const resolveSrv = srv({
      '_xmpp-client._tcp.example.test': { name: 'inside.example.test', port: server.port },
    });
    assert.ok(isRefusal(await login(t, {}, { policy: p, resolveSrv })));
    assert.equal(server.connections, 0);
  });

  test('an allowed name is reached at the address the policy checked; the stream is for the JID domain', async (t) => {
    // 127.0.0.2: only the pinned address reaches the server (the name resolves nowhere else).
    const server = await startServer(t, '127.0.0.2');
    const p = policy({ 'xmpp.example.test': '127.0.0.2' }, ['127.0.0.0/8']);
    const err = await login(t, { host: 'xmpp.example.test', port: server.port }, { policy: p });
    assert.ok(err instanceof GatewayError && err.code === 'im.unreachable', String(err));
    assert.deepEqual(server.streamTo, ['example.test']);
  });

  test('an allowed SRV target is reached at its checked address', async (t) => {
    const server = await startServer(t, '127.0.0.2');
    const p = policy({ 'chat.example.test': '127.0.0.2' }, ['127.0.0.2']);
    const resolveSrv = srv({
      '_xmpp-client._tcp.example.test': { name: 'chat.example.test', port: server.port },
    });
    await login(t, {}, { policy: p, resolveSrv });
    assert.deepEqual(server.streamTo, ['example.test']);
  });

  test('TLS checks the certificate against the JID domain, not the address: STARTTLS and direct TLS', async (t) => {
    // Node checks the certificate against `servername ?? host` of tls.connect.
    const connects = t.mock.method(tls, 'connect');
    const checkedName = () =>
      connects.mock.calls.map((c) => {
        const o = c.arguments[0] as { servername?: string; host?: string };
        return o.servername ?? o.host;
      });
    const starttls = await startServer(t, '127.0.0.2', 'starttls');
    const p = policy({ 'xmpp.example.test': '127.0.0.2', 'tls.example.test': '127.0.0.2' }, ['127.0.0.2']);
    await login(t, { host: 'xmpp.example.test', port: starttls.port }, { policy: p });
    // @xmpp/starttls passes the stream's domain as the host (and so sends no SNI, as before).
    assert.deepEqual(checkedName(), ['example.test']);
    assert.equal(starttls.connections, 1);
    const direct = await startServer(t, '127.0.0.2', 'direct');
    const resolveSrv = srv({
      '_xmpps-client._tcp.example.test': { name: 'tls.example.test', port: direct.port },
    });
    await login(t, {}, { policy: p, resolveSrv });
    assert.deepEqual(checkedName(), ['example.test', 'example.test']);
    await eventually('the TLS handshake', () => direct.sni.length === 1);
    assert.deepEqual(direct.sni, ['example.test']);
    assert.equal(direct.connections, 1);
  });

  test('without a policy nothing is checked: loopback is reached as before', async (t) => {
    const server = await startServer(t, '127.0.0.1');
    await login(t, { host: '127.0.0.1', port: server.port }, {});
    assert.deepEqual(server.streamTo, ['example.test']);
  });
});

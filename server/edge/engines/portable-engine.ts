/**
 * The portable engine: node:http for long-poll and the `ws` package (noServer,
 * handleUpgrade) for WebSocket. Slower and heavier per connection than uWS,
 * but it runs wherever Node runs, and it serves TLS (`tls`: node:https,
 * wss:// and https:// long-poll; certificates reloaded by ServingTls).
 *
 * Port sharing: under node:cluster, workers calling listen() share the
 * primary's listening handle; plain worker processes can use the same
 * SO_REUSEPORT preload as uWS (../reuse-port.ts), since libuv binds through libc.
 */
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { type RawData, type WebSocket, WebSocketServer } from 'ws';
import { encodeBatch } from '../../../device-protocol/codec.ts';
import type { WsCarrier } from '../carriers.ts';
import { errorFrame, preAuthRefusalFrame } from '../frames.ts';
import {
  type EdgeEngine,
  type EngineHost,
  type EngineOptions,
  POLL_HEADERS,
  POLL_PATH,
  POLL_PREFLIGHT_HEADERS,
  type PollExchange,
  refusalResponse,
  WS_PATH,
  type WsDriver,
} from './engine.ts';

/** The carrier rides on the socket object, so that the event listeners can be shared functions. */
type CarrierSocket = WebSocket & { carrier: WsCarrier; core: EngineHost; open: Set<WebSocket> };

const portableDriver: WsDriver = {
  send(socket, bytes) {
    (socket as WebSocket).send(bytes);
  },
  sendMany(socket, frames) {
    const ws = socket as WebSocket;
    // ws has no cork of its own; its net.Socket does (one writev for the burst).
    const raw = (ws as unknown as { _socket?: { cork(): void; uncork(): void } })._socket;
    raw?.cork();
    try {
      for (const f of frames) ws.send(f);
    } finally {
      raw?.uncork();
    }
  },
  bufferedAmount(socket) {
    return (socket as WebSocket).bufferedAmount;
  },
  end(socket, code, reason) {
    (socket as WebSocket).close(code, reason);
  },
  terminate(socket) {
    (socket as WebSocket).terminate();
  },
  armDrain(socket, carrier) {
    // `ws` has no drain event of its own; the underlying net.Socket has.
    const raw = (socket as unknown as { _socket?: Duplex })._socket;
    if (raw === undefined) return;
    raw.once('drain', () => carrier.onDrain());
  },
};

function onMessage(this: CarrierSocket, data: RawData, isBinary: boolean): void {
  const bytes = Array.isArray(data)
    ? Buffer.concat(data)
    : data instanceof ArrayBuffer
      ? new Uint8Array(data)
      : (data as Buffer);
  this.core.wsMessage(this.carrier, bytes, isBinary);
}

function onClose(this: WebSocket): void {
  const s = this as CarrierSocket;
  s.open.delete(this);
  s.core.wsClosed(s.carrier);
}

function onError(this: WebSocket, _err: Error): void {
  // Protocol violations (a message over maxPayload, bad opcodes): `ws` closes the socket itself.
}

class NodeExchange implements PollExchange {
  aborted = false;
  done = false;
  body: Uint8Array = EMPTY;
  onAborted: ((ex: PollExchange) => void) | undefined = undefined;
  carrier: PollExchange['carrier'] = undefined;

  constructor(
    private readonly res: http.ServerResponse,
    readonly method: string,
    readonly sessionId: string,
    readonly token: string,
    readonly query: string,
    readonly remoteAddress: string,
  ) {}

  respond(status: number, body: Uint8Array, closeConnection = false): void {
    if (this.aborted || this.done) return;
    this.done = true;
    const headers: Record<string, string | number> = { 'Content-Length': body.length };
    for (const [k, v] of POLL_HEADERS) headers[k] = v;
    if (closeConnection) headers.Connection = 'close';
    this.res.writeHead(status, headers);
    this.res.end(body);
  }
}

const EMPTY = new Uint8Array(0);

function header(req: http.IncomingMessage, name: string): string {
  const v = req.headers[name];
  return typeof v === 'string' ? v : '';
}

export function startPortableEngine(o: EngineOptions): Promise<EdgeEngine> {
  const core = o.core;
  const sockets = new Set<WebSocket>();
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: o.maxPayloadBytes,
    perMessageDeflate: false,
    clientTracking: false,
    // Frames are binary; a text message is refused by the core, not validated here.
    skipUTF8Validation: true,
  });

  const serverOptions: http.ServerOptions = {
    // A connection that sends no request headers within the Hello deadline is closed
    // (Node's default holds it for a minute); checked a few times per deadline.
    headersTimeout: o.headersTimeoutMs,
    connectionsCheckingInterval: Math.min(30_000, Math.max(100, Math.floor(o.headersTimeoutMs / 4))),
  };
  const listener: http.RequestListener = (req, res) => {
    req.socket.setTimeout(0); // it spoke: from now on the timeouts of HTTP apply (see 'connection' below)
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    if (path !== POLL_PATH) {
      res.writeHead(404).end();
      return;
    }
    const method = req.method ?? 'GET';
    if (method === 'OPTIONS') {
      res.writeHead(204, Object.fromEntries(POLL_PREFLIGHT_HEADERS)).end();
      return;
    }
    if (method !== 'GET' && method !== 'POST') {
      res.writeHead(405).end();
      return;
    }
    const sessionId = header(req, 'x-mmgw-session');
    const ex = new NodeExchange(
      res,
      method,
      sessionId,
      header(req, 'x-mmgw-token'),
      q < 0 ? '' : url.slice(q + 1),
      req.socket.remoteAddress ?? '',
    );
    res.on('close', () => {
      if (ex.done) return;
      ex.aborted = true;
      ex.onAborted?.(ex);
    });
    if (method !== 'POST') {
      core.poll(ex);
      return;
    }
    const refusal = sessionId === '' ? core.admit(ex.remoteAddress) : undefined;
    if (refusal !== undefined) {
      // Answered before its body is read; the core checks again once it is.
      ex.respond(
        refusal.status,
        encodeBatch([preAuthRefusalFrame(refusal.status, refusal.retryAfterSec)]),
        true,
      );
      req.destroy();
      return;
    }
    const chunks: Buffer[] = [];
    let total = 0;
    req.on('data', (chunk: Buffer) => {
      if (ex.done) return;
      total += chunk.length;
      if (total > o.maxPollBodyBytes) {
        const frame = errorFrame(
          'protocol.frame_too_large',
          `The request body exceeds ${o.maxPollBodyBytes} bytes.`,
        );
        ex.respond(400, encodeBatch([frame]), true);
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (ex.done || ex.aborted) return;
      ex.body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, total);
      core.poll(ex);
    });
    req.on('error', () => {});
  };
  const secure = o.tls?.createServer(
    'device',
    // The handshake too must be done within the Hello deadline.
    { ...serverOptions, handshakeTimeout: o.headersTimeoutMs },
    listener,
  );
  const server: http.Server =
    (secure as unknown as http.Server | undefined) ?? http.createServer(serverOptions, listener);
  // A TLS handshake that fails (an old protocol version, an unknown CA) ends its socket; nothing to log.
  server.on('tlsClientError', (_err: Error, socket: Duplex) => socket.destroy());
  // headersTimeout only counts once a request has begun: a connection that sends nothing would
  // be held for good. Until its first request (or upgrade, where `ws` clears it) it has the Hello
  // deadline; the server's timeout handler destroys it then. With TLS, the socket HTTP reads is
  // the TLS one, once its handshake is done.
  server.on(secure ? 'secureConnection' : 'connection', (socket: Socket) => {
    socket.setTimeout(o.headersTimeoutMs);
  });
  server.on('clientError', (_err, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
    else socket.destroy();
  });

  server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    socket.on('error', () => {});
    if (path !== WS_PATH || core.draining) {
      socket.end(
        core.draining
          ? 'HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\r\n'
          : 'HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n',
      );
      return;
    }
    // Before the socket is kept: a connection over the unauthenticated caps costs one answer.
    const address = req.socket.remoteAddress ?? '';
    const refusal = core.admit(address);
    if (refusal !== undefined) {
      socket.end(refusalResponse(refusal), () => socket.destroy());
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      const s = ws as CarrierSocket;
      s.carrier = core.newWsCarrier(address);
      s.core = core;
      s.open = sockets;
      sockets.add(ws);
      s.on('message', onMessage as (this: WebSocket, data: RawData, isBinary: boolean) => void);
      s.on('error', onError);
      s.on('close', onClose);
      core.wsOpen(s.carrier, ws);
    });
  });

  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: o.host || undefined, port: o.port }, () => {
      server.off('error', reject);
      server.on('error', (err) => core.logger.error({ err }, 'edge http server error'));
      const port = (server.address() as AddressInfo).port;
      let listening = true;
      const engine: EdgeEngine = {
        name: 'portable',
        port,
        driver: portableDriver,
        openSockets: () => sockets.size,
        stopAccepting() {
          if (!listening) return;
          listening = false;
          server.close();
        },
        async close() {
          engine.stopAccepting();
          for (const ws of sockets) ws.terminate();
          sockets.clear();
          server.closeAllConnections();
          await new Promise<void>((r) => wss.close(() => r()));
        },
      };
      resolve(engine);
    });
  });
}

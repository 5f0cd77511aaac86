/**
 * The uWebSockets.js engine (package @trufflesuite/uws-js-unofficial, pinned:
 * no TLS and no permessage-deflate in this build; put TLS on a terminating
 * load balancer, or use the portable engine).
 *
 * Limits are enforced by the core with typed frames; the uWS settings here are
 * backstops set above them: maxPayloadLength above maxFrameBytes (so that an
 * oversized frame gets protocol.frame_too_large instead of a bare close),
 * maxBackpressure above maxQueuedBytes plus one frame (so that the fatal
 * Error still fits in the queue), idleTimeout above 2.5 × the longest
 * heartbeat a profile may set (heartbeat.ts).
 *
 * Port sharing: this build does not set SO_REUSEPORT on Linux (checked with
 * strace: uSockets only does so on other systems), so several worker
 * processes on one port need the preload shim of ../reuse-port.ts.
 */
import uws from '@trufflesuite/uws-js-unofficial';
import { encodeBatch } from '../../../device-protocol/codec.ts';
import type { WsCarrier } from '../carriers.ts';
import { errorFrame, preAuthRefusalFrame } from '../frames.ts';
import {
  type EdgeEngine,
  type EngineOptions,
  POLL_HEADERS,
  POLL_PATH,
  POLL_PREFLIGHT_HEADERS,
  type PollExchange,
  WS_PATH,
  type WsDriver,
} from './engine.ts';

type UwsSocket = uws.WebSocket<{ c: WsCarrier }>;

const STATUS_TEXT: Partial<Record<number, string>> = {
  200: '200 OK',
  204: '204 No Content',
  400: '400 Bad Request',
  401: '401 Unauthorized',
  404: '404 Not Found',
  405: '405 Method Not Allowed',
  410: '410 Gone',
  429: '429 Too Many Requests',
  503: '503 Service Unavailable',
};

/** uWS takes the whole status line; a code outside the table goes out bare. */
function statusLine(status: number): string {
  return STATUS_TEXT[status] ?? String(status);
}

// Arguments of the corked send, passed through module variables so that a
// send allocates no closure (uWS calls the cork callback synchronously).
let corkSocket: UwsSocket | undefined;
let corkBytes: Uint8Array | undefined;
const corkedSend = (): void => {
  corkSocket!.send(corkBytes!, true);
};
let corkFrames: readonly Uint8Array[] | undefined;
const corkedSendMany = (): void => {
  const ws = corkSocket!;
  for (const f of corkFrames!) ws.send(f, true);
};

const uwsDriver: WsDriver = {
  send(socket, bytes) {
    const ws = socket as UwsSocket;
    corkSocket = ws;
    corkBytes = bytes;
    try {
      ws.cork(corkedSend);
    } finally {
      corkSocket = undefined;
      corkBytes = undefined;
    }
  },
  sendMany(socket, frames) {
    const ws = socket as UwsSocket;
    corkSocket = ws;
    corkFrames = frames;
    try {
      ws.cork(corkedSendMany);
    } finally {
      corkSocket = undefined;
      corkFrames = undefined;
    }
  },
  bufferedAmount(socket) {
    return (socket as UwsSocket).getBufferedAmount();
  },
  end(socket, code, reason) {
    (socket as UwsSocket).end(code, reason);
  },
  terminate(socket) {
    (socket as UwsSocket).close();
  },
  armDrain() {
    // uWS calls the behaviour's drain handler whenever a backpressured socket drains.
  },
};

class UwsExchange implements PollExchange {
  aborted = false;
  done = false;
  body: Uint8Array = EMPTY;
  onAborted: ((ex: PollExchange) => void) | undefined = undefined;
  carrier: PollExchange['carrier'] = undefined;

  constructor(
    private readonly res: uws.HttpResponse,
    readonly method: string,
    readonly sessionId: string,
    readonly token: string,
    readonly query: string,
    readonly remoteAddress: string,
  ) {}

  respond(status: number, body: Uint8Array, closeConnection = false): void {
    if (this.aborted || this.done) return;
    this.done = true;
    const res = this.res;
    res.cork(() => {
      res.writeStatus(statusLine(status));
      for (const [k, v] of POLL_HEADERS) res.writeHeader(k, v);
      res.end(body, closeConnection);
    });
  }
}

const EMPTY = new Uint8Array(0);

export function startUwsEngine(o: EngineOptions): Promise<EdgeEngine> {
  const core = o.core;
  const app = uws.App();
  let openSockets = 0;
  let listenSocket: uws.us_listen_socket | undefined;

  app.ws<{ c: WsCarrier }>(WS_PATH, {
    compression: uws.DISABLED,
    maxPayloadLength: o.maxPayloadBytes,
    maxBackpressure: o.maxBackpressureBytes,
    closeOnBackpressureLimit: 0,
    idleTimeout: o.idleTimeoutSec,
    sendPingsAutomatically: false,
    upgrade: (res, req, context) => {
      if (core.draining) {
        res.writeStatus(statusLine(503)).end();
        return;
      }
      // Before the socket is kept: a connection over the unauthenticated caps costs one answer.
      const address = Buffer.from(res.getRemoteAddressAsText()).toString();
      const refusal = core.admit(address);
      if (refusal !== undefined) {
        res.cork(() => {
          res
            .writeStatus(statusLine(refusal.status))
            .writeHeader('Retry-After', String(refusal.retryAfterSec))
            .end('', true);
        });
        return;
      }
      res.upgrade(
        { c: core.newWsCarrier(address) },
        req.getHeader('sec-websocket-key'),
        req.getHeader('sec-websocket-protocol'),
        req.getHeader('sec-websocket-extensions'),
        context,
      );
    },
    open: (ws) => {
      openSockets++;
      core.wsOpen(ws.getUserData().c, ws);
    },
    message: (ws, message, isBinary) => {
      // The ArrayBuffer is valid only during this call; the codec copies what it keeps.
      core.wsMessage(ws.getUserData().c, new Uint8Array(message), isBinary);
    },
    drain: (ws) => {
      core.wsDrain(ws.getUserData().c);
    },
    close: (ws) => {
      openSockets--;
      core.wsClosed(ws.getUserData().c);
    },
  });

  const poll = (res: uws.HttpResponse, req: uws.HttpRequest): void => {
    const method = req.getMethod().toUpperCase();
    const sessionId = req.getHeader('x-mmgw-session');
    // Only an opening POST (Hello/Resume) needs it, for the limits before authentication.
    const opening = method === 'POST' && sessionId === '';
    const ex = new UwsExchange(
      res,
      method,
      sessionId,
      req.getHeader('x-mmgw-token'),
      req.getQuery() ?? '',
      opening ? Buffer.from(res.getRemoteAddressAsText()).toString() : '',
    );
    res.onAborted(() => {
      ex.aborted = true;
      ex.onAborted?.(ex);
    });
    if (method !== 'POST') {
      core.poll(ex);
      return;
    }
    const refusal = opening ? core.admit(ex.remoteAddress) : undefined;
    if (refusal !== undefined) {
      // Answered before its body is read; the core checks again once it is.
      ex.respond(
        refusal.status,
        encodeBatch([preAuthRefusalFrame(refusal.status, refusal.retryAfterSec)]),
        true,
      );
      return;
    }
    const chunks: Uint8Array[] = [];
    let total = 0;
    res.onData((chunk, isLast) => {
      if (ex.done || ex.aborted) return;
      total += chunk.byteLength;
      if (total > o.maxPollBodyBytes) {
        const frame = errorFrame(
          'protocol.frame_too_large',
          `The request body exceeds ${o.maxPollBodyBytes} bytes.`,
        );
        ex.respond(400, encodeBatch([frame]), true);
        return;
      }
      // The chunk is neutered after this callback: copy it.
      chunks.push(new Uint8Array(chunk.slice(0)));
      if (!isLast) return;
      ex.body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, total);
      core.poll(ex);
    });
  };
  app.get(POLL_PATH, poll);
  app.post(POLL_PATH, poll);
  app.options(POLL_PATH, (res) => {
    res.writeStatus(statusLine(204));
    for (const [k, v] of POLL_PREFLIGHT_HEADERS) res.writeHeader(k, v);
    res.end();
  });
  app.any(POLL_PATH, (res) => {
    res.writeStatus(statusLine(405)).end();
  });
  app.any('/*', (res) => {
    res.writeStatus(statusLine(404)).end();
  });

  return new Promise((resolve, reject) => {
    const onListen = (ls: uws.us_listen_socket | false): void => {
      if (ls === false) {
        reject(
          new Error(
            `uWebSockets.js could not listen on ${o.host || '*'}:${o.port} (port in use? Worker processes sharing a port need the SO_REUSEPORT preload: see server/edge/reuse-port.ts)`,
          ),
        );
        return;
      }
      listenSocket = ls;
      const port = uws.us_socket_local_port(ls as unknown as uws.us_socket);
      const engine: EdgeEngine = {
        name: 'uws',
        port,
        driver: uwsDriver,
        openSockets: () => openSockets,
        stopAccepting() {
          if (listenSocket !== undefined) {
            uws.us_listen_socket_close(listenSocket);
            listenSocket = undefined;
          }
        },
        async close() {
          engine.stopAccepting();
          // Closes every socket (their close handlers run) and the app.
          (app as unknown as { close(): void }).close();
        },
      };
      resolve(engine);
    };
    if (o.host) app.listen(o.host, o.port, onListen);
    else app.listen(o.port, onListen);
  });
}

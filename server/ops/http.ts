import {
  createServer,
  type IncomingMessage,
  type RequestListener,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { GatewayError, presentError, toGatewayError } from '../../device-protocol/errors.ts';
import { opsClientAllowed, type ServingTls } from '../net/serving-tls.ts';

/**
 * The ops endpoint of every node, on the admin port: /healthz (the process
 * answers), /readyz (every role is up and can serve), /metrics (Prometheus).
 *
 * Further routes mount as handlers (the admin REST API mounts /api/v1 here):
 * `server.use(handler)`; each handler in turn gets the request until one
 * returns true (it answered). The built-in routes come first; anything nobody
 * answers is a 404. A handler that throws gets the central error answer
 * (sendError): GatewayError → its HTTP status and {error:{code,message}}.
 *
 * With `tls` the port is HTTPS (TLS 1.2+, server/net/serving-tls.ts); with a
 * client CA there, /metrics and /readyz answer only connections whose client
 * certificate it signed (403 otherwise). /healthz stays open for liveness
 * probes (it says "ok" and nothing else), as do the API and the UI, which
 * have their own logins.
 */

/** Answer and return true, or return false to pass the request on. */
export type OpsHandler = (req: IncomingMessage, res: ServerResponse, url: URL) => boolean | Promise<boolean>;

export interface Readiness {
  ready: boolean;
  /** Why not (empty when ready). */
  reasons: string[];
}

/** A prom-client Registry, or anything that renders Prometheus text like one (the primary of edge workers sums theirs). */
export type MetricsSource = Pick<Registry, 'metrics' | 'contentType'>;

export interface OpsServerOptions {
  port: number;
  host?: string;
  logger: Logger;
  metrics: MetricsSource;
  readiness: () => Readiness;
  /** Serve HTTPS with this certificate (and ask for ops client certificates if it has a client CA). */
  tls?: ServingTls | undefined;
}

/** Routes that need the ops client certificate when one is configured. */
const GUARDED = new Set(['/metrics', '/readyz']);

export interface OpsServer {
  readonly port: number;
  readonly server: Server;
  use(handler: OpsHandler): void;
  close(): Promise<void>;
}

/** HTTP status of an error: the errors registry's, for every code. */
export function httpStatusOf(err: GatewayError): number {
  return presentError(err, 'operator').status;
}

/** The JSON error body of an operator-facing answer (an internal error never shows its details). */
export function errorBody(err: unknown): {
  code: string;
  message: string;
  retryable: boolean;
  field?: string;
} {
  const p = presentError(err, 'operator');
  return {
    code: p.code,
    message: p.message,
    retryable: p.retryable,
    ...(p.field === undefined ? {} : { field: p.field }),
  };
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  });
  res.end(res.req?.method === 'HEAD' ? undefined : text);
}

/** The one place an error becomes an HTTP answer. Internal errors never show their details. */
export function sendError(res: ServerResponse, err: unknown, logger?: Logger): void {
  const gw = toGatewayError(err);
  const status = httpStatusOf(gw);
  if (status >= 500) logger?.error({ err: gw.cause ?? gw, code: gw.code }, 'ops request failed');
  if (res.headersSent) res.destroy();
  else sendJson(res, status, { error: errorBody(gw) });
}

/** What is read of a body nobody wanted before the answer goes anyway, on a connection then closed. */
const UNREAD_BODY_MAX = 64 * 1024;

/**
 * A request answered without its body (no route, refused before reading) has
 * what is left of it read and dropped first, up to UNREAD_BODY_MAX: a client
 * that is still sending (Dovecot's HTTP client, the new-mail hook's) would
 * otherwise wait seconds for an answer it already has. More than that, or a
 * client that stops sending, and the answer says the connection closes.
 */
async function unreadBodyDone(req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (req.complete) return;
  const whole = await new Promise<boolean>((resolve) => {
    let bytes = 0;
    const done = (ok: boolean) => {
      clearTimeout(timer);
      req.off('data', onData).off('end', onEnd).off('error', onError);
      if (!ok) req.pause();
      resolve(ok);
    };
    const onData = (chunk: Buffer) => {
      bytes += chunk.length;
      if (bytes > UNREAD_BODY_MAX) done(false);
    };
    const onEnd = () => done(true);
    const onError = () => done(false);
    const timer = setTimeout(() => done(false), 2000);
    req.on('data', onData).on('end', onEnd).on('error', onError);
  });
  if (!whole) res.setHeader('connection', 'close');
}

export async function startOpsServer(options: OpsServerOptions): Promise<OpsServer> {
  const { logger, metrics, readiness, tls } = options;
  const handlers: OpsHandler[] = [];

  const builtIn: OpsHandler = async (req, res, url) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return false;
    if (GUARDED.has(url.pathname) && !opsClientAllowed(tls, req.socket)) {
      throw new GatewayError(
        'api.forbidden',
        `${url.pathname} needs a client certificate signed by the ops client CA (tls.opsClientCa).`,
      );
    }
    switch (url.pathname) {
      case '/healthz':
        sendJson(res, 200, { status: 'ok' });
        return true;
      case '/readyz': {
        const r = readiness();
        sendJson(
          res,
          r.ready ? 200 : 503,
          r.ready ? { status: 'ready' } : { status: 'unavailable', reasons: r.reasons },
        );
        return true;
      }
      case '/metrics': {
        const text = await metrics.metrics();
        res.writeHead(200, { 'content-type': metrics.contentType, 'cache-control': 'no-store' });
        res.end(req.method === 'HEAD' ? undefined : text);
        return true;
      }
      default:
        return false;
    }
  };

  const listener: RequestListener = async (req, res) => {
    try {
      const url = new URL(req.url ?? '/', 'http://ops.invalid');
      for (const handler of [builtIn, ...handlers]) {
        if (await handler(req, res, url)) return;
      }
      await unreadBodyDone(req, res);
      sendJson(res, 404, {
        error: { code: 'request.unknown_method', message: `no route for ${req.method} ${url.pathname}` },
      });
    } catch (err) {
      if (!res.headersSent) await unreadBodyDone(req, res);
      sendError(res, err, logger);
    }
  };
  const server: Server = tls
    ? (tls.createServer('admin', {}, listener) as unknown as Server)
    : createServer(listener);
  // Monitoring polls with keep-alive; do not let idle sockets hold close() up for long.
  server.keepAliveTimeout = 5000;

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host ?? '0.0.0.0', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  logger.info(
    { port, tls: tls !== undefined, opsClientCerts: tls?.opsClientCerts ?? false },
    'ops endpoint listening',
  );

  return {
    port,
    server,
    use(handler) {
      handlers.push(handler);
    },
    close() {
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

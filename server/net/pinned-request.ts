/**
 * One HTTP(S) request to the address an outbound policy check pinned (DNS
 * cannot switch it between the check and the connection), the URL's host in
 * the Host header and as the TLS servername. The whole request has a
 * deadline; the peer's body is not read unless asked for (`readBody`, at
 * most that many bytes; beyond them the request fails), and never logged.
 * For the alarm webhook, Web Push and FCM.
 */
import type { Agent as HttpAgent, IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP } from 'node:net';
import type { PinnedDestination } from './destination-policy.ts';

export interface PinnedRequest {
  method: string;
  headers: OutgoingHttpHeaders;
  body?: string | Buffer;
  /** Connect to response (ms). */
  timeoutMs: number;
  /** The message of the error a request past its deadline fails with. */
  timedOut: string;
  /** Read the answer's body, of at most this many bytes. */
  readBody?: number;
  /** Trust anchors (PEM) instead of the system's: tests with a private CA. */
  ca?: string | Buffer;
  /** The connection pool (an https.Agent for https:); default Node's global agent. */
  agent?: HttpAgent;
}

export function pinnedRequest(
  url: URL,
  target: PinnedDestination,
  o: PinnedRequest,
): Promise<{ status: number; headers: IncomingHttpHeaders; body?: Buffer }> {
  const https = url.protocol === 'https:';
  return new Promise((resolve, reject) => {
    const req = (https ? httpsRequest : httpRequest)(
      {
        host: target.address,
        family: target.family,
        port: target.port,
        method: o.method,
        path: `${url.pathname}${url.search}`,
        // SNI carries names only (RFC 6066): an address is checked against the certificate without it.
        ...(https && isIP(target.host) === 0 ? { servername: target.host } : {}),
        ...(https && o.ca !== undefined ? { ca: o.ca } : {}),
        headers: { ...o.headers, host: url.host },
        timeout: o.timeoutMs,
        ...(o.agent ? { agent: o.agent } : {}),
      },
      (res) => {
        const status = res.statusCode ?? 0;
        const limit = o.readBody;
        if (limit === undefined) {
          res.resume();
          resolve({ status, headers: res.headers });
          return;
        }
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > limit) req.destroy(new Error(`answer larger than ${limit} bytes`));
          else chunks.push(chunk);
        });
        res.once('end', () => resolve({ status, headers: res.headers, body: Buffer.concat(chunks) }));
        res.once('error', reject);
      },
    );
    const deadline = setTimeout(() => req.destroy(new Error(o.timedOut)), o.timeoutMs);
    req.once('close', () => clearTimeout(deadline));
    req.once('timeout', () => req.destroy(new Error(o.timedOut)));
    req.once('error', reject);
    req.end(o.body);
  });
}

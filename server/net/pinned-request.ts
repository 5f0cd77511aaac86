/**
 * One HTTP(S) request to the address an outbound policy check pinned (DNS
 * cannot switch it between the check and the connection), the URL's host in
 * the Host header and as the TLS servername. The whole request has a
 * deadline; the peer's body is neither read nor logged: only the status and
 * headers come back. For the alarm webhook and Web Push.
 */
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { PinnedDestination } from './destination-policy.ts';

export interface PinnedRequest {
  method: string;
  headers: OutgoingHttpHeaders;
  body?: string | Buffer;
  /** Connect to response (ms). */
  timeoutMs: number;
  /** The message of the error a request past its deadline fails with. */
  timedOut: string;
}

export function pinnedRequest(
  url: URL,
  target: PinnedDestination,
  o: PinnedRequest,
): Promise<{ status: number; headers: IncomingHttpHeaders }> {
  const https = url.protocol === 'https:';
  return new Promise((resolve, reject) => {
    const req = (https ? httpsRequest : httpRequest)(
      {
        host: target.address,
        family: target.family,
        port: target.port,
        method: o.method,
        path: `${url.pathname}${url.search}`,
        ...(https ? { servername: target.host } : {}),
        headers: { ...o.headers, host: url.host },
        timeout: o.timeoutMs,
      },
      (res) => {
        res.resume();
        resolve({ status: res.statusCode ?? 0, headers: res.headers });
      },
    );
    const deadline = setTimeout(() => req.destroy(new Error(o.timedOut)), o.timeoutMs);
    req.once('close', () => clearTimeout(deadline));
    req.once('timeout', () => req.destroy(new Error(o.timedOut)));
    req.once('error', reject);
    req.end(o.body);
  });
}
